#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// What `signet setup` registers and removes: the p11-kit module file, the NSS databases of Mozilla
/// profiles and `~/.pki/nssdb` (through `modutil`), and gpgsm's route through gnupg-pkcs11-scd.
/// Each target gives one `Outcome`; nothing here prints.
public struct Setup: Sendable {
    /// One target's result, as the line `target: result`.
    public struct Outcome: Sendable, Equatable {
        public var target: String
        public var result: String
        /// The target was left undone (a running program, a tool that failed).
        public var failed = false
    }

    /// The name NSS databases list the module under.
    static let nssName = "Signet"
    /// The daemon gpg-agent must start for gpgsm to reach PKCS#11 modules.
    static let pkcs11Daemon = "/usr/bin/gnupg-pkcs11-scd"

    let home: String
    /// The environment setup was given (for Signet's own folders).
    let environment: [String: String]
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    let configHome: String
    /// `$GNUPGHOME`, else `~/.gnupg`.
    let gnupgHome: String
    /// `$PATH`, for finding the programs.
    let path: String
    let dryRun: Bool

    public init(environment: [String: String], dryRun: Bool) {
        home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        self.environment = environment
        configHome = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config"
        gnupgHome = environment["GNUPGHOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.gnupg"
        path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        self.dryRun = dryRun
    }

    /// Registers `module` everywhere.
    public func registerAll(module: String) -> [Outcome] {
        var outcomes = [registerP11Kit(module: module)]
        outcomes += nssDatabases().map { target in target.database.map { register($0, module: module) } ?? target.note! }
        outcomes += registerGnuPG(module: module)
        return outcomes
    }

    /// Removes what `registerAll` registered.
    public func removeAll() -> [Outcome] {
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
    public static func moduleFileText(module: String, systemWide: Bool) -> String {
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

    public func writeSystemFile(_ path: String, module: String) -> Outcome {
        writeModuleFile(path, text: Setup.moduleFileText(module: module, systemWide: true), module: module, target: "p11-kit system module file \(path)")
    }

    public func removeSystemFile(_ path: String) -> Outcome { removeModuleFile(path, target: "p11-kit system module file \(path)") }

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
        do throws(SetupError) { entries = try NSSModules.list(database.directory, modutil: modutil) } catch {
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
        do throws(SetupError) { entries = try NSSModules.list(database.directory, modutil: modutil) } catch {
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
    func write(_ file: MarkedLines, _ lines: [String]?, to path: String, target: String) -> Outcome {
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
