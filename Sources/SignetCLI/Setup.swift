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
        outcomes += nssDatabases().map { target in target.database.map { register($0, module: module) } ?? target.note! }
        outcomes += registerGnuPG(module: module)
        return outcomes
    }

    /// Removes what `registerAll` registered.
    func removeAll() -> [Outcome] {
        var outcomes = [removeP11Kit()]
        outcomes += nssDatabases().compactMap(\.database).map(remove)
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
        switch SetupFile.read(path, limit: SetupFile.configLimit) {
        case .absent: break
        case .unusable(let reason):
            return Outcome(target: target, result: "\(path) \(reason); left as it is", failed: true)
        case .bytes(let bytes):
            let existing = String(decoding: bytes, as: UTF8.self)
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
        let existing: String
        switch SetupFile.read(path, limit: SetupFile.configLimit) {
        case .absent: return Outcome(target: target, result: "not registered")
        case .unusable(let reason): return Outcome(target: target, result: "\(path) \(reason); left as it is", failed: true)
        case .bytes(let bytes): existing = String(decoding: bytes, as: UTF8.self)
        }
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

    /// The NSS databases to register in (`database`), and a line for each program with no profile to register
    /// in (`note`), program by program: every profile Thunderbird and Firefox use (native, snap, flatpak;
    /// `MozillaProfiles`), then `~/.pki/nssdb`.
    func nssDatabases() -> [(database: NSSDatabase?, note: Outcome?)] {
        var targets: [(database: NSSDatabase?, note: Outcome?)] = []
        for program in MozillaProfiles.Program.allCases {
            let profiles = MozillaProfiles.profiles(of: program, home: home, configHome: configHome)
            for profile in profiles {
                targets.append((NSSDatabase(target: "\(program.rawValue)\(profile.kind) profile \(profile.name)", directory: profile.directory,
                                            program: program.rawValue), nil))
            }
            guard profiles.isEmpty else { continue }
            let note = MozillaProfiles.installed(program, path: path, home: home)
                ? "no profile yet — start \(program.rawValue) once, then run `signet setup` again"
                : "not installed (no \(program.commands.joined(separator: " or ")) in PATH, no snap or flatpak of it)"
            targets.append((nil, Outcome(target: program.rawValue, result: note)))
        }
        targets.append((NSSDatabase(target: shown(home + "/.pki/nssdb"), directory: home + "/.pki/nssdb", program: nil), nil))
        return targets
    }

    func register(_ database: NSSDatabase, module: String) -> Outcome {
        let target = database.target
        if let refusal = inUse(database) { return refusal }
        guard let modutil = SetupTool.find("modutil", path: path) else {
            return Outcome(target: target, result: "not registered: modutil is not installed (apt install libnss3-tools)", failed: true)
        }
        // modutil -add makes a database in an empty folder (no certutil -N, which asks for the password of a
        // key4.db it finds without its cert9.db, on the terminal, for ever).
        let created = database.program == nil && !FileIO.exists(database.directory + "/cert9.db") ? "created, " : ""
        let entries: [NSSModules.Entry]
        do throws(CLIError) { entries = try NSSModules.list(database.directory, modutil: modutil) } catch {
            return Outcome(target: target, result: error.message, failed: true)
        }
        let ours = entries.filter { NSSModules.isSignet($0, module: module) }
        let current = ours.filter { $0.library == module }
        let stale = ours.filter { $0.library != module }
        if current.count == 1 && stale.isEmpty { return Outcome(target: target, result: "already registered") }
        let replaced = stale.isEmpty ? "" : " (replaced the entry for \(stale.map(\.library).joined(separator: ", ")))"
        if dryRun { return Outcome(target: target, result: (created.isEmpty ? "" : "would create the database and ") + "would register" + replaced) }
        if database.program == nil, !FileIO.makeDirectories(database.directory) {
            return Outcome(target: target, result: "cannot make \(shown(database.directory)): \(String(cString: strerror(errno)))", failed: true)
        }
        // Every Signet entry but one that names this library goes; then it is added when none is left, under a
        // name no entry of the user's has.
        let leaving = stale + current.dropFirst()
        var steps = leaving.map { NSSModules.Step.delete($0) }
        if current.isEmpty {
            let staying = entries.filter { !leaving.contains($0) }
            steps.append(.add(NSSModules.Entry(name: NSSModules.freeName(in: staying), library: module)))
        }
        return change(database, modutil: modutil, from: entries, steps: steps, done: created + "registered" + replaced)
    }

    func remove(_ database: NSSDatabase) -> Outcome {
        let target = database.target
        guard MozillaProfiles.hasDatabase(database.directory) else { return Outcome(target: target, result: "not registered") }
        if let refusal = inUse(database) { return refusal }
        guard let modutil = SetupTool.find("modutil", path: path) else {
            return Outcome(target: target, result: "not removed: modutil is not installed (apt install libnss3-tools)", failed: true)
        }
        let entries: [NSSModules.Entry]
        do throws(CLIError) { entries = try NSSModules.list(database.directory, modutil: modutil) } catch {
            return Outcome(target: target, result: error.message, failed: true)
        }
        let ours = entries.filter { NSSModules.isSignet($0, module: nil) }
        if ours.isEmpty { return Outcome(target: target, result: "not registered") }
        if dryRun { return Outcome(target: target, result: "would remove") }
        return change(database, modutil: modutil, from: entries, steps: ours.map { .delete($0) }, done: "removed")
    }

    /// Runs `steps` with modutil on `database`, whose modules are `entries`, and checks the module list after
    /// each: modutil has exited 0 while leaving a truncated `pkcs11.txt` on a full disk. The file's bytes are
    /// kept first; when a step fails or leaves a list other than expected, they are put back (and files modutil
    /// made where there were none are removed), and the outcome says so.
    private func change(_ database: NSSDatabase, modutil: String, from entries: [NSSModules.Entry], steps: [NSSModules.Step], done: String) -> Outcome {
        let target = database.target
        let listFile = database.directory + "/pkcs11.txt"
        let saved: [UInt8]?
        switch SetupFile.read(listFile, limit: SetupFile.nssListLimit) {
        case .absent: saved = nil
        case .bytes(let bytes): saved = bytes
        case .unusable(let reason): return Outcome(target: target, result: "\(shown(listFile)) \(reason); left as it is", failed: true)
        }
        let made = ["cert9.db", "key4.db", "pkcs11.txt"].map { database.directory + "/" + $0 }.filter { !FileIO.exists($0) }
        var expected = entries
        var problem: String?
        for step in steps {
            let arguments: [String]
            switch step {
            case .delete(let entry):
                arguments = ["-dbdir", "sql:" + database.directory, "-delete", entry.name, "-force"]
                if let index = expected.firstIndex(of: entry) { expected.remove(at: index) }
            case .add(let entry):
                arguments = ["-dbdir", "sql:" + database.directory, "-add", entry.name, "-libfile", entry.library, "-force"]
                expected.append(entry)
            }
            let ran = SetupTool.run(modutil, arguments)
            if ran.status != 0 {
                problem = "modutil \(arguments[2]) \(arguments[3]) failed: \(ran.output)"
                break
            }
            var listed = FileIO.readText(listFile, limit: SetupFile.nssListLimit).map(NSSModules.parse(pkcs11Text:)) ?? []
            // A database modutil has just made lists NSS's internal module (no library) as well.
            if saved == nil { listed.removeAll { $0.library.isEmpty } }
            if NSSModules.sorted(listed) != NSSModules.sorted(expected) {
                let lost = expected.filter { !listed.contains($0) }.map { $0.name.isEmpty ? "(unnamed)" : $0.name }
                problem = "modutil \(arguments[2]) \(arguments[3]) reported success, but pkcs11.txt does not list what it should"
                    + (lost.isEmpty ? "" : " (missing: \(lost.joined(separator: ", ")))") + " — is the disk full?"
                break
            }
        }
        guard let problem else { return Outcome(target: target, result: done) }
        return Outcome(target: target, result: problem + "; " + restore(listFile, saved, removing: made), failed: true)
    }

    /// Puts `saved` back as `path` (nil: there was no such file) and removes `made`; says what it did.
    private func restore(_ path: String, _ saved: [UInt8]?, removing made: [String]) -> String {
        for file in made where file != path { unlink(file) }
        guard let saved else {
            unlink(path)
            return "the files modutil made were removed"
        }
        var info = stat()
        let mode = stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0o600
        if FileIO.writeAtomically(path, bytes: saved, mode: mode) || SetupFile.overwrite(path, with: saved) {
            return "\(shown(path)) was put back as it was"
        }
        let copy = path + ".signet-saved"
        let kept = SetupFile.overwrite(copy, with: saved) ? "its earlier content is in \(shown(copy))" : "and its earlier content could not be saved either"
        return "\(shown(path)) could not be put back (\(String(cString: strerror(errno)))): \(kept)"
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
        switch SetupFile.read(pkcs11DaemonConfig, limit: SetupFile.configLimit) {
        case .unusable(let reason):
            outcomes.append(Outcome(target: daemonTarget, result: "\(shown(pkcs11DaemonConfig)) \(reason); left as it is: add the lines "
                + "`providers signet` and `provider-signet-library \(module)` yourself", failed: true))
        case .absent, .bytes:
            let daemon = MarkedLines(bytes: SetupFile.read(pkcs11DaemonConfig, limit: SetupFile.configLimit).bytes ?? [])
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
        }
        switch SetupFile.read(agentConfig, limit: SetupFile.configLimit) {
        case .unusable(let reason):
            outcomes.append(Outcome(target: agentTarget, result: "\(shown(agentConfig)) \(reason); left as it is: add the line "
                + "`scdaemon-program \(Setup.pkcs11Daemon)` yourself", failed: true))
        case .absent, .bytes:
            let agent = MarkedLines(bytes: SetupFile.read(agentConfig, limit: SetupFile.configLimit).bytes ?? [])
            if let program = agent.outsideValue(of: "scdaemon-program") {
                outcomes.append(Outcome(target: agentTarget, result: program == Setup.pkcs11Daemon
                    ? "already uses gnupg-pkcs11-scd (a line of your own)"
                    : "uses scdaemon-program \(program) (a line of your own); left as it is, so gpgsm does not reach Signet until it is \(Setup.pkcs11Daemon)"))
            } else {
                var outcome = write(agent, ["scdaemon-program \(Setup.pkcs11Daemon)"], to: agentConfig, target: agentTarget)
                if outcome.result.hasPrefix("registered") { outcome.result += " (restart gpg-agent to use it: gpgconf --kill gpg-agent)" }
                outcomes.append(outcome)
            }
        }
        return outcomes
    }

    func removeGnuPG() -> [Outcome] {
        [(pkcs11DaemonConfig, "gpgsm (\(shown(pkcs11DaemonConfig)))"), (agentConfig, "gpg-agent (\(shown(agentConfig)))")].map { path, target in
            switch SetupFile.read(path, limit: SetupFile.configLimit) {
            case .absent: return Outcome(target: target, result: "not registered")
            case .unusable(let reason): return Outcome(target: target, result: "\(shown(path)) \(reason); left as it is", failed: true)
            case .bytes(let bytes):
                let file = MarkedLines(bytes: bytes)
                guard file.block != nil else { return Outcome(target: target, result: "not registered") }
                return write(file, nil, to: path, target: target)
            }
        }
    }

    /// Writes `lines` (nil: none) as Signet's marked block of `file`, keeping every other byte as it is.
    /// A file left with nothing of the user's is removed.
    private func write(_ file: MarkedLines, _ lines: [String]?, to path: String, target: String) -> Outcome {
        if file.block == lines { return Outcome(target: target, result: lines == nil ? "not registered" : "already registered") }
        let verb = lines == nil ? "removed" : file.block == nil ? "registered" : "registered (replaced Signet's earlier lines)"
        if dryRun { return Outcome(target: target, result: lines == nil ? "would remove" : "would register") }
        let bytes = file.bytes(with: lines)
        // A symlinked dotfile stays a symlink: the file it points to is the one replaced.
        let real = realPath(path) ?? path
        if bytes.isEmpty {
            guard unlink(real) == 0 || errno == ENOENT else { return Outcome(target: target, result: "cannot remove \(path): \(String(cString: strerror(errno)))", failed: true) }
            return Outcome(target: target, result: verb)
        }
        var info = stat()
        let mode = stat(real, &info) == 0 ? info.st_mode & 0o7777 : 0o600
        guard FileIO.makeDirectories(gnupgHome), FileIO.writeAtomically(real, bytes: bytes, mode: mode) else {
            return Outcome(target: target, result: "cannot write \(path) (\(String(cString: strerror(errno)))); left as it was", failed: true)
        }
        return Outcome(target: target, result: verb)
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// Reading the files setup edits, telling "not there" from "there but not usable": a file that cannot be read
/// or is too large is never taken for an empty one (and replaced).
enum SetupFile {
    /// gpg-agent.conf, gnupg-pkcs11-scd.conf, p11-kit module files: larger than this, setup leaves them alone.
    static let configLimit = 1 << 20
    /// An NSS database's pkcs11.txt.
    static let nssListLimit = 16 << 20

    enum Contents {
        case absent
        case bytes([UInt8])
        /// Why it cannot be used, as the end of a sentence that starts with the path.
        case unusable(String)

        var bytes: [UInt8]? { if case .bytes(let bytes) = self { bytes } else { nil } }
    }

    /// The bytes of `path`; `.absent` only when there is no file (ENOENT).
    static func read(_ path: String, limit: Int) -> Contents {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return errno == ENOENT ? .absent : .unusable("cannot be read (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return .unusable("is not a regular file") }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .unusable("cannot be read (\(String(cString: strerror(errno))))")
            }
            if count == 0 { return .bytes(out) }
            out += chunk.prefix(count)
            if out.count > limit { return .unusable("is larger than \(limit >> 20) MiB, more than setup edits") }
        }
    }

    /// Writes `bytes` over the file at `path` in place (truncating it first): the way back when there is no
    /// room for a second copy beside it (a full disk). Not atomic; only for putting a file back.
    static func overwrite(_ path: String, with bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let written = bytes.withUnsafeBytes { (try? FileIO.writeAll(fd, $0)) != nil }
        let synced = fsync(fd) == 0
        return close(fd) == 0 && written && synced
    }
}

/// A configuration file (gpg-agent.conf, gnupg-pkcs11-scd.conf) as bytes: the user's lines, kept byte for byte
/// (CRLF or LF, any encoding), and Signet's block, the lines `signet setup` added between two marker comments,
/// so that undo removes exactly them and the file is again byte for byte what it was.
struct MarkedLines {
    static let begin = "# Added by `signet setup`; `signet setup --undo` removes these lines, up to the end mark."
    /// The begin mark when setup also ended the user's last line, which had no line end: undo takes that away too.
    static let beginAfterUnended = "# Added by `signet setup` (with the line end before it); `signet setup --undo` removes these lines, up to the end mark."
    static let end = "# End of the lines added by `signet setup`."

    /// The user's lines, each with its own line end (the last may have none).
    private(set) var outside: [[UInt8]] = []
    /// Signet's lines (without the marks and line ends), nil when the file has no block.
    private(set) var block: [String]?
    /// Where in `outside` the block was.
    private var position: Int?
    /// The block's begin mark was `beginAfterUnended`.
    private var endedLineBefore = false
    /// The file's line end: CRLF when its first line ends so, else LF.
    private let lineEnd: [UInt8]

    init(bytes: [UInt8]) {
        var lines: [[UInt8]] = []
        var start = 0
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            lines.append(Array(bytes[start...index]))
            start = index + 1
        }
        if start < bytes.count { lines.append(Array(bytes[start...])) }
        lineEnd = lines.first.map { $0.count >= 2 && $0.suffix(2) == [13, 10] } == true ? [13, 10] : [10]
        var inside: [[UInt8]]?
        var beginLine: [UInt8] = []
        for line in lines {
            let text = MarkedLines.content(line)
            if inside == nil, block == nil, text == MarkedLines.begin || text == MarkedLines.beginAfterUnended {
                inside = []
                beginLine = line
                position = outside.count
                endedLineBefore = text == MarkedLines.beginAfterUnended
            } else if inside != nil, text == MarkedLines.end {
                block = inside!.map(MarkedLines.content)
                inside = nil
            } else if inside != nil {
                inside!.append(line)
            } else {
                outside.append(line)
            }
        }
        // A begin mark without its end: the lines after it are the user's, not ours.
        if let inside, block == nil {
            outside.insert(contentsOf: [beginLine] + inside, at: position ?? outside.count)
            position = nil
            endedLineBefore = false
        }
    }

    /// A line's text without its line end (LF or CRLF), decoded for comparing (invalid UTF-8 becomes U+FFFD).
    static func content(_ line: [UInt8]) -> String {
        var end = line.count
        if end > 0, line[end - 1] == 10 { end -= 1 }
        if end > 0, line[end - 1] == 13 { end -= 1 }
        return String(decoding: line[..<end], as: UTF8.self)
    }

    /// The value of the user's `key value` line (the last one, as GnuPG reads it), or nil.
    func outsideValue(of key: String) -> String? {
        outside.compactMap { ConfigLines.value(of: key, inLine: MarkedLines.content($0), separator: " ") }.last
    }

    /// The file with `lines` as Signet's block (where the old block was, else at the end), or without one.
    func bytes(with lines: [String]?) -> [UInt8] {
        var result = outside
        let at = min(position ?? result.count, result.count)
        var ended = position != nil && endedLineBefore
        if let lines {
            if position == nil, let last = result.last, last.last != 10 {
                // The user's last line has no line end: the block gives it one, and says so for undo.
                result[result.count - 1] += lineEnd
                ended = true
            }
            let block = [ended ? MarkedLines.beginAfterUnended : MarkedLines.begin] + lines + [MarkedLines.end]
            result.insert(contentsOf: block.map { Array($0.utf8) + lineEnd }, at: at)
        } else if ended, at > 0 {
            // Undo the line end setup gave the line before the block.
            var line = result[at - 1]
            if line.last == 10 { line.removeLast() }
            if line.last == 13, lineEnd == [13, 10] { line.removeLast() }
            result[at - 1] = line
        }
        return result.flatMap { $0 }
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

    /// The last value of `key` in `text` (LF or CRLF lines).
    static func value(of key: String, in text: String, separator: Character) -> String? {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).compactMap { value(of: key, inLine: String($0), separator: separator) }.last
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and carriage returns.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\r\n" }
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

    /// One modutil run.
    enum Step {
        case delete(Entry)
        case add(Entry)
    }

    /// The name Signet's entry gets: "Signet", or "Signet (agent)", "Signet (agent) 2", … when an entry of
    /// the user's already has it (NSS names are unique in a database).
    static func freeName(in entries: [Entry]) -> String {
        let names = Set(entries.map(\.name))
        return ([Setup.nssName, Setup.nssName + " (agent)"] + (2...99).map { "\(Setup.nssName) (agent) \($0)" }).first { !names.contains($0) }
            ?? Setup.nssName + " (agent) \(entries.count + 1)"
    }

    /// Whether `entry` is one Signet wrote: its library is `module` or a file named libsignet-pkcs11.so
    /// (an earlier install elsewhere). Not by its name: a module of the user's may be called "Signet".
    static func isSignet(_ entry: Entry, module: String?) -> Bool {
        entry.library.split(separator: "/").last.map(String.init) == FrontEndModule.fileName || entry.library == module
    }

    /// `entries` in an order of their own, for comparing lists whatever order a tool wrote them in.
    static func sorted(_ entries: [Entry]) -> [Entry] {
        entries.sorted { ($0.name, $0.library) < ($1.name, $1.library) }
    }

    /// The database's modules: from its `pkcs11.txt` when it has one (no module is loaded), else from `modutil -list`.
    /// A directory without a database lists none.
    /// - Throws: `CLIError` when modutil fails.
    static func list(_ directory: String, modutil: String) throws(CLIError) -> [Entry] {
        switch SetupFile.read(directory + "/pkcs11.txt", limit: SetupFile.nssListLimit) {
        case .bytes(let bytes): return parse(pkcs11Text: String(decoding: bytes, as: UTF8.self))
        case .unusable(let reason): throw CLIError(.failure, "\(directory)/pkcs11.txt \(reason); left as it is")
        case .absent: break
        }
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
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
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

/// Running the NSS tools: never on the terminal, never for ever.
enum SetupTool {
    /// How long one tool may run before it is killed (modutil takes well under a second).
    static let timeoutSeconds = 60

    /// `name`'s path in `path` (a `$PATH` value), or nil.
    static func find(_ name: String, path: String) -> String? {
        path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// Runs `executable` and waits at most `timeout` seconds; its exit status and its standard output and error
    /// together. The child reads nothing from a terminal: standard input is /dev/null, and it runs in a session of
    /// its own, with no controlling terminal, so /dev/tty cannot be opened (certutil, asked for a password it
    /// cannot read, loops on /dev/tty for ever). One that outlives `timeout` is killed, with its process group.
    static func run(_ executable: String, _ arguments: [String], timeout: Int = timeoutSeconds) -> (status: Int32, output: String) {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return (-1, "cannot make a pipe: \(String(cString: strerror(errno)))") }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID: glibc's spawn.h defines it (0x80) only under _GNU_SOURCE, so Swift does not see it.
        posix_spawnattr_setflags(&attributes, 0x80)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard spawned == 0 else { return (-1, "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let deadline = MonotonicClock.seconds() + Double(timeout)
        var timedOut = false
        while true {
            let left = deadline - MonotonicClock.seconds()
            if left <= 0 { timedOut = true; break }
            var poller = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(max(1, min(left * 1000, 60_000))))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            // Keep the start and the end of a long output (a tool that loops prints without end).
            output += chunk.prefix(count)
            if output.count > 1 << 16 { output = Array(output.prefix(1 << 15)) + Array(output.suffix(1 << 15)) }
        }
        if timedOut { kill(-pid, SIGKILL); kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        var lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map { $0.trimmingSpaces }.filter { !$0.isEmpty }
        if lines.count > 6 { lines = Array(lines.prefix(3)) + ["…"] + Array(lines.suffix(2)) }
        let text = lines.joined(separator: " ")
        if timedOut {
            return (-1, "\(executable.split(separator: "/").last ?? "") did not finish within \(timeout) s and was stopped" + (text.isEmpty ? "" : " (it said: \(text))"))
        }
        return (code, text)
    }
}

/// Held while setup changes files, so that two setups at once (which would each read a file, then write it
/// back over the other's change) cannot run: the second is refused, naming the first.
enum SetupLock {
    /// Takes the lock on `path` (made 0600, its folder 0700, when missing) and holds it until the process exits.
    /// - Returns: nil when taken; else why not, as a sentence for the user.
    static func acquire(_ path: String) -> String? {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard directory.isEmpty || FileIO.makeDirectories(directory) else {
            return "Cannot make \(directory) for setup's lock: \(String(cString: strerror(errno)))."
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return "Cannot open setup's lock \(path): \(String(cString: strerror(errno)))." }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) == 0 { return nil }  // fd stays open: the lock lasts as long as the process
        let reason = errno
        var holder = flock()
        holder.l_type = Int16(F_WRLCK)
        holder.l_whence = Int16(SEEK_SET)
        let pid = fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? " (pid \(holder.l_pid))" : ""
        close(fd)
        guard reason == EAGAIN || reason == EACCES else { return "Cannot lock \(path): \(String(cString: strerror(reason)))." }
        return "Another `signet setup` is running\(pid); nothing was changed. Let it finish, then run `signet setup` again if needed."
    }
}
