#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// What `signet setup` registers and removes: the p11-kit module file, the NSS databases of Mozilla
/// profiles and `~/.pki/nssdb` (through `modutil`), and gpgsm's route through gnupg-pkcs11-scd.
/// Each target gives one `Outcome`; nothing here prints.
struct Setup {
    /// One target's result, as the line `target: result`.
    struct Outcome {
        var target: String
        var result: String
        /// The target was left undone (a running program, a tool that failed).
        var failed = false
    }

    /// The name NSS databases list the module under.
    static let nssName = "Signet"
    /// The daemon gpg-agent must start for gpgsm to reach PKCS#11 modules.
    static let pkcs11Daemon = "/usr/bin/gnupg-pkcs11-scd"

    let home: String
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    let configHome: String
    /// `$GNUPGHOME`, else `~/.gnupg`.
    let gnupgHome: String
    /// `$PATH`, for finding the programs.
    let path: String
    let dryRun: Bool

    init(environment: [String: String], dryRun: Bool) {
        home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        configHome = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config"
        gnupgHome = environment["GNUPGHOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.gnupg"
        path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        self.dryRun = dryRun
    }

    /// Registers `module` everywhere.
    func registerAll(module: String) -> [Outcome] {
        var outcomes = [registerP11Kit(module: module)]
        let nss = nssDatabases()
        outcomes += nss.notes + nss.databases.map { register($0, module: module) }
        outcomes += registerGnuPG(module: module)
        return outcomes
    }

    /// Removes what `registerAll` registered.
    func removeAll() -> [Outcome] {
        var outcomes = [removeP11Kit()]
        let nss = nssDatabases()
        outcomes += nss.databases.map(remove)
        outcomes += removeGnuPG()
        return outcomes
    }

    /// `path` with the home directory written as `~`.
    func shown(_ path: String) -> String {
        path.hasPrefix(home + "/") && home != "/" ? "~" + path.dropFirst(home.count) : path
    }

    // MARK: p11-kit

    /// The first line of every module file Signet writes; a file without it is someone else's.
    static let moduleFileMark = "# Written by `signet setup"

    /// A p11-kit module file for `module`. `disable-in` keeps the agent and the command line from loading
    /// their own front end through p11-kit (loop guard #1; `FrontEndGuard` in SignetPKCS11 is #2).
    static func moduleFileText(module: String, systemWide: Bool) -> String {
        """
        \(moduleFileMark)\(systemWide ? " --system-file" : "")`; `signet setup --undo\(systemWide ? " --system-file PATH" : "")` removes it.
        # Signet's PKCS#11 front end: each key operation is a request to signet-agent.
        module: \(module)
        critical: no
        disable-in: signet-agent signet

        """
    }

    var userModuleFile: String { configHome + "/pkcs11/modules/signet.module" }

    func registerP11Kit(module: String) -> Outcome {
        var outcome = writeModuleFile(userModuleFile, text: Setup.moduleFileText(module: module, systemWide: false), module: module,
                                      target: "p11-kit (\(shown(userModuleFile)))")
        if getuid() == 0, !outcome.failed {
            outcome.result += " (but p11-kit reads no user's module files for root: see `signet setup --system-file`)"
        }
        return outcome
    }

    func removeP11Kit() -> Outcome { removeModuleFile(userModuleFile, target: "p11-kit (\(shown(userModuleFile)))") }

    func writeSystemFile(_ path: String, module: String) -> Outcome {
        writeModuleFile(path, text: Setup.moduleFileText(module: module, systemWide: true), module: module, target: "p11-kit system module file \(path)")
    }

    func removeSystemFile(_ path: String) -> Outcome { removeModuleFile(path, target: "p11-kit system module file \(path)") }

    private func writeModuleFile(_ path: String, text: String, module: String, target: String) -> Outcome {
        var replaced = ""
        if let existing = FileIO.readText(path, limit: 1 << 16) {
            if existing == text { return Outcome(target: target, result: "already registered") }
            let named = ConfigLines.value(of: "module", in: existing, separator: ":")
            guard existing.hasPrefix(Setup.moduleFileMark) else {
                if named == module { return Outcome(target: target, result: "already registered (by a module file of your own)") }
                return Outcome(target: target, result: "\(path) is not Signet's (its module is \(named ?? "not named")); left as it is: remove it and run setup again", failed: true)
            }
            if let named, named != module { replaced = " (replaced the entry for \(named))" }
        }
        if dryRun { return Outcome(target: target, result: "would register" + replaced) }
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard directory.isEmpty || FileIO.makeDirectories(directory, mode: 0o755), FileIO.writeAtomically(path, text: text, mode: 0o644) else {
            return Outcome(target: target, result: "cannot write \(path): \(String(cString: strerror(errno)))", failed: true)
        }
        return Outcome(target: target, result: "registered" + replaced)
    }

    private func removeModuleFile(_ path: String, target: String) -> Outcome {
        guard let existing = FileIO.readText(path, limit: 1 << 16) else { return Outcome(target: target, result: "not registered") }
        guard existing.hasPrefix(Setup.moduleFileMark) else {
            return Outcome(target: target, result: "\(path) was not written by signet setup; left as it is", failed: true)
        }
        if dryRun { return Outcome(target: target, result: "would remove") }
        guard unlink(path) == 0 else { return Outcome(target: target, result: "cannot remove \(path): \(String(cString: strerror(errno)))", failed: true) }
        return Outcome(target: target, result: "removed")
    }

    // MARK: NSS

    /// An NSS database: a Mozilla profile or `~/.pki/nssdb`.
    struct NSSDatabase {
        var target: String
        var directory: String
        /// The program that keeps it open and locked while running (a Mozilla profile), for "quit it first".
        var program: String?
    }

    /// The NSS databases to register in, and a line for each program with no profile to register in:
    /// every profile Thunderbird and Firefox use (native, snap, flatpak; `MozillaProfiles`), then `~/.pki/nssdb`.
    func nssDatabases() -> (databases: [NSSDatabase], notes: [Outcome]) {
        var databases: [NSSDatabase] = []
        var notes: [Outcome] = []
        for program in MozillaProfiles.Program.allCases {
            let profiles = MozillaProfiles.profiles(of: program, home: home, configHome: configHome)
            for profile in profiles {
                databases.append(NSSDatabase(target: "\(program.rawValue)\(profile.kind) profile \(profile.name)", directory: profile.directory,
                                             program: program.rawValue))
            }
            guard profiles.isEmpty else { continue }
            if MozillaProfiles.installed(program, path: path, home: home) {
                notes.append(Outcome(target: program.rawValue, result: "no profile yet — start \(program.rawValue) once, then run `signet setup` again"))
            } else {
                notes.append(Outcome(target: program.rawValue, result: "not installed (no \(program.commands.joined(separator: " or ")) in PATH, no snap or flatpak of it)"))
            }
        }
        databases.append(NSSDatabase(target: shown(home + "/.pki/nssdb"), directory: home + "/.pki/nssdb", program: nil))
        return (databases, notes)
    }

    func register(_ database: NSSDatabase, module: String) -> Outcome {
        let target = database.target
        if let refusal = inUse(database) { return refusal }
        guard let modutil = SetupTool.find("modutil") else {
            return Outcome(target: target, result: "not registered: modutil is not installed (apt install libnss3-tools)", failed: true)
        }
        let dbdir = "sql:" + database.directory
        var created = ""
        if database.program == nil, !FileIO.exists(database.directory + "/cert9.db") {
            if dryRun { return Outcome(target: target, result: "would create the database and register") }
            guard let certutil = SetupTool.find("certutil") else {
                return Outcome(target: target, result: "not registered: certutil is not installed (apt install libnss3-tools)", failed: true)
            }
            FileIO.makeDirectories(database.directory)
            let made = SetupTool.run(certutil, ["-N", "--empty-password", "-d", dbdir])
            guard made.status == 0 else { return Outcome(target: target, result: "cannot create the database: \(made.output)", failed: true) }
            created = "created, "
        }
        let entries: [NSSModules.Entry]
        do throws(CLIError) { entries = try NSSModules.list(database.directory, modutil: modutil) } catch {
            return Outcome(target: target, result: error.message, failed: true)
        }
        let ours = entries.filter { NSSModules.isSignet($0, module: module) }
        let current = ours.filter { $0.library == module }
        let stale = ours.filter { $0.library != module }
        if current.count == 1 && stale.isEmpty { return Outcome(target: target, result: created + "already registered") }
        let replaced = stale.isEmpty ? "" : " (replaced the entry for \(stale.map(\.library).joined(separator: ", ")))"
        if dryRun { return Outcome(target: target, result: "would register" + replaced) }
        // Every Signet entry but one that names this library goes; then it is added when none is left.
        for entry in stale + current.dropFirst() {
            let deleted = SetupTool.run(modutil, ["-dbdir", dbdir, "-delete", entry.name, "-force"])
            guard deleted.status == 0 else { return Outcome(target: target, result: "cannot remove the entry \(entry.name): \(deleted.output)", failed: true) }
        }
        if current.isEmpty {
            let added = SetupTool.run(modutil, ["-dbdir", dbdir, "-add", Setup.nssName, "-libfile", module, "-force"])
            guard added.status == 0 else { return Outcome(target: target, result: "modutil failed: \(added.output)", failed: true) }
        }
        return Outcome(target: target, result: created + "registered" + replaced)
    }

    func remove(_ database: NSSDatabase) -> Outcome {
        let target = database.target
        guard FileIO.exists(database.directory + "/cert9.db") || FileIO.exists(database.directory + "/pkcs11.txt") else {
            return Outcome(target: target, result: "not registered")
        }
        if let refusal = inUse(database) { return refusal }
        guard let modutil = SetupTool.find("modutil") else {
            return Outcome(target: target, result: "not removed: modutil is not installed (apt install libnss3-tools)", failed: true)
        }
        let ours: [NSSModules.Entry]
        do throws(CLIError) { ours = try NSSModules.list(database.directory, modutil: modutil).filter { NSSModules.isSignet($0, module: nil) } } catch {
            return Outcome(target: target, result: error.message, failed: true)
        }
        if ours.isEmpty { return Outcome(target: target, result: "not registered") }
        if dryRun { return Outcome(target: target, result: "would remove") }
        for entry in ours {
            let deleted = SetupTool.run(modutil, ["-dbdir", "sql:" + database.directory, "-delete", entry.name, "-force"])
            guard deleted.status == 0 else { return Outcome(target: target, result: "cannot remove the entry \(entry.name): \(deleted.output)", failed: true) }
        }
        return Outcome(target: target, result: "removed")
    }

    /// The refusal for a profile its program has open: NSS keeps the database open while it runs, and
    /// would write over (or be confused by) a change made under it.
    private func inUse(_ database: NSSDatabase) -> Outcome? {
        guard let program = database.program, let pid = MozillaProfiles.runningPID(database.directory) else { return nil }
        return Outcome(target: database.target, result: "in use by \(program) (pid \(pid)): quit \(program) first", failed: true)
    }

    // MARK: GnuPG

    var pkcs11DaemonConfig: String { gnupgHome + "/gnupg-pkcs11-scd.conf" }
    var agentConfig: String { gnupgHome + "/gpg-agent.conf" }

    func registerGnuPG(module: String) -> [Outcome] {
        let daemonTarget = "gpgsm (\(shown(pkcs11DaemonConfig)))", agentTarget = "gpg-agent (\(shown(agentConfig)))"
        guard access(Setup.pkcs11Daemon, X_OK) == 0 else {
            return [Outcome(target: "gpgsm", result: "skipped: gnupg-pkcs11-scd is not installed (apt install gnupg-pkcs11-scd, then run setup again)")]
        }
        var outcomes: [Outcome] = []
        let daemon = MarkedLines(text: FileIO.readText(pkcs11DaemonConfig, limit: 1 << 20) ?? "")
        if let providers = daemon.outsideValue(of: "providers") {
            let ownLibrary = daemon.outsideValue(of: "provider-signet-library")
            if providers.split(separator: ",").contains(where: { $0.trimmingSpaces == "signet" }), ownLibrary == module {
                outcomes.append(Outcome(target: daemonTarget, result: "already registered (by lines of your own)"))
            } else {
                outcomes.append(Outcome(target: daemonTarget, result: "has a providers line of your own (\(providers)); left as it is: "
                    + "add signet to it, and the line `provider-signet-library \(module)`"))
            }
        } else {
            outcomes.append(write(daemon, ["providers signet", "provider-signet-library \(module)"], to: pkcs11DaemonConfig, target: daemonTarget))
        }
        let agent = MarkedLines(text: FileIO.readText(agentConfig, limit: 1 << 20) ?? "")
        if let program = agent.outsideValue(of: "scdaemon-program") {
            outcomes.append(Outcome(target: agentTarget, result: program == Setup.pkcs11Daemon
                ? "already uses gnupg-pkcs11-scd (a line of your own)"
                : "uses scdaemon-program \(program) (a line of your own); left as it is, so gpgsm does not reach Signet until it is \(Setup.pkcs11Daemon)"))
        } else {
            var outcome = write(agent, ["scdaemon-program \(Setup.pkcs11Daemon)"], to: agentConfig, target: agentTarget)
            if outcome.result.hasPrefix("registered") { outcome.result += " (restart gpg-agent to use it: gpgconf --kill gpg-agent)" }
            outcomes.append(outcome)
        }
        return outcomes
    }

    func removeGnuPG() -> [Outcome] {
        [(pkcs11DaemonConfig, "gpgsm (\(shown(pkcs11DaemonConfig)))"), (agentConfig, "gpg-agent (\(shown(agentConfig)))")].map { path, target in
            guard let text = FileIO.readText(path, limit: 1 << 20), MarkedLines(text: text).block != nil else {
                return Outcome(target: target, result: "not registered")
            }
            return write(MarkedLines(text: text), nil, to: path, target: target)
        }
    }

    /// Writes `lines` (nil: none) as Signet's marked block of `file`, keeping every other line as it is.
    /// A file left with nothing of the user's is removed.
    private func write(_ file: MarkedLines, _ lines: [String]?, to path: String, target: String) -> Outcome {
        if file.block == lines { return Outcome(target: target, result: lines == nil ? "not registered" : "already registered") }
        let verb = lines == nil ? "removed" : file.block == nil ? "registered" : "registered (replaced Signet's earlier lines)"
        if dryRun { return Outcome(target: target, result: lines == nil ? "would remove" : "would register") }
        let text = file.text(with: lines)
        // A symlinked dotfile stays a symlink: the file it points to is the one replaced.
        let real = realPath(path) ?? path
        if text.allSatisfy({ $0 == "\n" || $0 == " " }) {
            guard unlink(real) == 0 || errno == ENOENT else { return Outcome(target: target, result: "cannot remove \(path): \(String(cString: strerror(errno)))", failed: true) }
            return Outcome(target: target, result: verb)
        }
        var info = stat()
        let mode = stat(real, &info) == 0 ? info.st_mode & 0o7777 : 0o600
        guard FileIO.makeDirectories(gnupgHome), FileIO.writeAtomically(real, text: text, mode: mode) else {
            return Outcome(target: target, result: "cannot write \(path): \(String(cString: strerror(errno)))", failed: true)
        }
        return Outcome(target: target, result: verb)
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A configuration file (gpg-agent.conf, gnupg-pkcs11-scd.conf) as the user's lines and Signet's block:
/// the lines `signet setup` added, between two marker comments, so that undo removes exactly them.
struct MarkedLines {
    static let begin = "# Added by `signet setup`; `signet setup --undo` removes these lines, up to the end mark."
    static let end = "# End of the lines added by `signet setup`."

    /// The user's lines, in order.
    var outside: [String] = []
    /// Signet's lines (without the marks), nil when the file has no block.
    var block: [String]?
    /// Where in `outside` the block was.
    private var position: Int?

    init(text: String) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var inside: [String]?
        for line in lines {
            if inside == nil, line == MarkedLines.begin, block == nil {
                inside = []
                position = outside.count
            } else if inside != nil, line == MarkedLines.end {
                block = inside
                inside = nil
            } else if inside != nil {
                inside!.append(line)
            } else {
                outside.append(line)
            }
        }
        // A begin mark without its end: the lines after it are the user's, not ours.
        if let inside, block == nil {
            outside.insert(contentsOf: [MarkedLines.begin] + inside, at: position ?? outside.count)
            position = nil
        }
    }

    /// The value of the user's `key value` line (the last one, as GnuPG reads it), or nil.
    func outsideValue(of key: String) -> String? {
        outside.compactMap { ConfigLines.value(of: key, inLine: $0, separator: " ") }.last
    }

    /// The file with `lines` as Signet's block (where the old block was, else at the end), or none.
    func text(with lines: [String]?) -> String {
        var result = outside
        if let lines {
            result.insert(contentsOf: [MarkedLines.begin] + lines + [MarkedLines.end], at: min(position ?? result.count, result.count))
        }
        return result.isEmpty ? "" : result.joined(separator: "\n") + "\n"
    }
}

/// `key value` lines of the simple configuration files setup reads.
enum ConfigLines {
    /// The value of `key` in one line (`key<separator>value`, spaces around), or nil for another key or a comment.
    static func value(of key: String, inLine line: String, separator: Character) -> String? {
        let trimmed = line.trimmingSpaces
        guard !trimmed.hasPrefix("#"), trimmed.hasPrefix(key) else { return nil }
        let rest = trimmed.dropFirst(key.count)
        if separator == " " {
            guard let first = rest.first, first == " " || first == "\t" else { return nil }
            return String(rest).trimmingSpaces
        }
        let afterKey = String(rest).trimmingSpaces
        guard afterKey.first == separator else { return nil }
        return String(afterKey.dropFirst()).trimmingSpaces
    }

    /// The last value of `key` in `text`.
    static func value(of key: String, in text: String, separator: Character) -> String? {
        text.split(separator: "\n").compactMap { value(of: key, inLine: String($0), separator: separator) }.last
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// The modules an NSS database lists.
enum NSSModules {
    struct Entry: Equatable {
        var name: String
        var library: String
    }

    /// Whether `entry` is Signet's front end: named Signet, a library named libsignet-pkcs11.so, or `module`.
    static func isSignet(_ entry: Entry, module: String?) -> Bool {
        entry.name == Setup.nssName || entry.library.split(separator: "/").last.map(String.init) == FrontEndModule.fileName || entry.library == module
    }

    /// The database's modules: from its `pkcs11.txt` when it has one (no module is loaded), else from `modutil -list`.
    /// A directory without a database lists none.
    /// - Throws: `CLIError` when modutil fails.
    static func list(_ directory: String, modutil: String) throws(CLIError) -> [Entry] {
        if let text = FileIO.readText(directory + "/pkcs11.txt", limit: 1 << 20) { return parse(pkcs11Text: text) }
        guard FileIO.exists(directory + "/cert9.db") else { return [] }
        let listed = SetupTool.run(modutil, ["-list", "-dbdir", "sql:" + directory])
        guard listed.status == 0 else { throw CLIError(.failure, "modutil cannot list the modules: \(listed.output)") }
        return parse(modutilList: listed.output)
    }

    /// Entries of `pkcs11.txt`: blocks of `key=value` lines separated by blank lines.
    static func parse(pkcs11Text text: String) -> [Entry] {
        var entries: [Entry] = []
        var name: String?, library: String?
        func flush() {
            if let name { entries.append(Entry(name: name, library: library ?? "")) }
            name = nil; library = nil
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingSpaces
            if trimmed.isEmpty { flush(); continue }
            if trimmed.hasPrefix("name=") { name = unquoted(trimmed.dropFirst(5)) }
            if trimmed.hasPrefix("library=") { library = unquoted(trimmed.dropFirst(8)) }
        }
        flush()
        return entries
    }

    /// Entries of `modutil -list`: `  2. NAME` then `library name: PATH`.
    static func parse(modutilList text: String) -> [Entry] {
        var entries: [Entry] = []
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingSpaces
            if let dot = trimmed.firstIndex(of: "."), !trimmed[..<dot].isEmpty, trimmed[..<dot].allSatisfy(\.isNumber),
               line.hasPrefix("  "), !line.hasPrefix("\t") {
                entries.append(Entry(name: trimmed[trimmed.index(after: dot)...].trimmingSpaces, library: ""))
            } else if trimmed.hasPrefix("library name:"), !entries.isEmpty {
                entries[entries.count - 1].library = trimmed.dropFirst("library name:".count).trimmingSpaces
            }
        }
        return entries
    }

    private static func unquoted(_ value: Substring) -> String {
        value.count >= 2 && value.first == "\"" && value.last == "\"" ? String(value.dropFirst().dropLast()) : String(value)
    }
}

/// Running the NSS tools.
enum SetupTool {
    /// `name`'s path in `$PATH`, or nil.
    static func find(_ name: String) -> String? {
        let path = ProcessEnvironment.value("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// Runs `executable` with standard input from /dev/null and waits; its standard output and error together.
    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return (-1, "cannot make a pipe: \(String(cString: strerror(errno)))") }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard spawned == 0 else { return (-1, "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output += chunk.prefix(count)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let text = String(decoding: output, as: UTF8.self).split(separator: "\n").map { $0.trimmingSpaces }.filter { !$0.isEmpty }.joined(separator: " ")
        return (code, text)
    }
}
