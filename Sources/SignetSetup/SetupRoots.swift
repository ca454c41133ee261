#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// `signet setup --trust-roots`: the root CAs Signet trusts, added where the other programs look for them —
/// each NSS database setup registers in (with `certutil`), gpg-agent's `trustlist.txt` and gpgsm's keybox —
/// and taken out again by `--undo`, exactly what was added and nothing else.
///
/// What was added is recorded: NSS entries carry the nickname prefix `Signet root ` and are listed, with their
/// database, in the state file `setup-roots`; keybox imports are listed there too (only a certificate gpgsm did
/// not have before); trustlist lines sit between Signet's marks. A root the user already had (in NSS under a
/// nickname of their own, in the keybox, a trustlist line of their own, or a disabled `!` line) is left alone,
/// so undo never takes it.
extension Setup {
    /// A root CA certificate to trust.
    public struct Root: Sendable {
        /// Signet's short id (`signet trust list`), for the NSS nickname.
        public var id: String
        /// The subject, for messages.
        public var subject: String
        /// The certificate, DER.
        public var der: [UInt8]
        /// The certificate, PEM.
        public var pem: String
        /// The SHA-1 fingerprint in hex (40 digits, any case): how gpg-agent's trustlist and gpgsm name it.
        public var sha1: String

        public init(id: String, subject: String, der: [UInt8], pem: String, sha1: String) {
            self.id = id; self.subject = subject; self.der = der; self.pem = pem
            self.sha1 = sha1.filter(\.isHexDigit).uppercased()
        }
    }

    /// The prefix of every NSS nickname `--trust-roots` gives.
    static let rootNicknamePrefix = "Signet root "

    /// NSS trust for e-mail only (`,C,`: a CA for S/MIME signers), or also for TLS servers (`C,C,`: a CA for web sites,
    /// such as the organisation's webmail), which only `web` asks for.
    static func nssTrust(web: Bool) -> String { web ? "C,C," : ",C," }

    /// Where `--trust-roots` records what it added.
    var rootsStateFile: String { SignetPaths(environment: environment).state + "/setup-roots" }

    /// gpg-agent's list of trusted roots.
    var trustList: String { gnupgHome + "/trustlist.txt" }

    /// Adds `roots` to every NSS database setup registers in (trust `,C,`, or `C,C,` when `web`), to gpg-agent's
    /// trustlist (flag S) and to gpgsm's keybox. One outcome per place.
    public func trustRoots(_ roots: [Root], web: Bool) -> [Outcome] {
        guard !roots.isEmpty else {
            return [Outcome(target: "roots", result: "Signet's trust store has no root CA to add (add yours with `signet trust add ROOT.pem`)", failed: true)]
        }
        var state = RootsState(read: rootsStateFile)
        var outcomes = nssDatabases().compactMap(\.database).map { trust(roots, in: $0, web: web, state: &state) }
        outcomes.append(trustInTrustList(roots))
        outcomes.append(importIntoKeybox(roots, state: &state))
        if !dryRun, !state.write(to: rootsStateFile) {
            outcomes.append(Outcome(target: "roots", result: "cannot write \(shown(rootsStateFile)) (\(String(cString: strerror(errno)))): "
                + "`signet setup --undo` will not know what was added", failed: true))
        }
        return outcomes
    }

    /// Takes out what `trustRoots` added, as its state file and marks record.
    public func untrustRoots() -> [Outcome] {
        var state = RootsState(read: rootsStateFile)
        var outcomes: [Outcome] = []
        for directory in state.nssDirectories {
            outcomes.append(untrust(in: directory, state: &state))
        }
        outcomes.append(removeFromTrustList())
        if !state.keybox.isEmpty { outcomes.append(removeFromKeybox(state: &state)) }
        if !dryRun {
            if state.isEmpty { unlink(rootsStateFile) } else { _ = state.write(to: rootsStateFile) }
        }
        return outcomes
    }

    // MARK: NSS

    private func trust(_ roots: [Root], in database: NSSDatabase, web: Bool, state: inout RootsState) -> Outcome {
        let target = database.target + " roots"
        guard MozillaProfiles.hasDatabase(database.directory) else {
            return Outcome(target: target, result: "no database (run `signet setup` first)", failed: true)
        }
        if let program = database.program, let pid = MozillaProfiles.runningPID(database.directory) {
            return Outcome(target: target, result: "in use by \(program) (pid \(pid)): quit \(program) first", failed: true)
        }
        guard let certutil = SetupTool.find("certutil", path: path) else {
            return Outcome(target: target, result: "not added: certutil is not installed (apt install libnss3-tools)", failed: true)
        }
        let listed: [(nickname: String, trust: String)]
        do throws(SetupError) { listed = try NSSCertificates.list(database.directory, certutil: certutil) } catch {
            return Outcome(target: target, result: error.message, failed: true)
        }
        let wanted = Setup.nssTrust(web: web)
        var added: [String] = [], changed: [String] = [], users: [String] = [], problems: [String] = []
        // The user's own certificates, by DER, read once: a root among them is theirs and stays as it is.
        let ownNicknames = listed.filter { !$0.nickname.hasPrefix(Setup.rootNicknamePrefix) }.map(\.nickname)
        let own = Set(ownNicknames).map { NSSCertificates.base64(of: $0, in: database.directory, certutil: certutil) ?? "" }
        for root in roots {
            let nickname = Setup.rootNicknamePrefix + root.id
            if own.contains(Base64.encode(root.der)) { users.append(root.subject); continue }
            if let existing = listed.first(where: { $0.nickname == nickname }) {
                if existing.trust == wanted { continue }
                if dryRun { changed.append(root.subject); continue }
                let ran = SetupTool.run(certutil, ["-M", "-d", "sql:" + database.directory, "-n", nickname, "-t", wanted])
                if ran.status == 0 { changed.append(root.subject) } else { problems.append("certutil -M \(nickname) failed: \(ran.output)") }
                continue
            }
            if dryRun { added.append(root.subject); continue }
            guard let file = TemporaryFile(root.pem) else { problems.append("cannot write a temporary file: \(String(cString: strerror(errno)))"); continue }
            defer { file.remove() }
            let ran = SetupTool.run(certutil, ["-A", "-d", "sql:" + database.directory, "-n", nickname, "-t", wanted, "-a", "-i", file.path])
            guard ran.status == 0 else { problems.append("certutil -A \(nickname) failed: \(ran.output)"); continue }
            // Recorded only once it is there, checked by reading it back.
            guard NSSCertificates.base64(of: nickname, in: database.directory, certutil: certutil) == Base64.encode(root.der) else {
                problems.append("certutil -A \(nickname) reported success, but the database does not hold it")
                continue
            }
            state.add(nss: database.directory, nickname: nickname)
            added.append(root.subject)
        }
        var parts: [String] = []
        let verb = dryRun ? "would add" : "added"
        let trustText = web ? "for e-mail and web sites" : "for e-mail"
        if !added.isEmpty { parts.append("\(verb) \(added.joined(separator: "; ")) (trusted \(trustText))") }
        if !changed.isEmpty { parts.append("\(dryRun ? "would trust" : "now trusts") \(changed.joined(separator: "; ")) \(trustText)") }
        if !users.isEmpty { parts.append("already has \(users.joined(separator: "; ")) (yours; left as it is)") }
        parts += problems
        if parts.isEmpty { parts.append("already trusted") }
        return Outcome(target: target, result: parts.joined(separator: "; "), failed: !problems.isEmpty)
    }

    private func untrust(in directory: String, state: inout RootsState) -> Outcome {
        let nicknames = state.nss[directory] ?? []
        let target = (directory == home + "/.pki/nssdb" ? shown(directory) : "NSS database \(shown(directory))") + " roots"
        guard MozillaProfiles.hasDatabase(directory) else {
            if !dryRun { state.nss[directory] = nil }
            return Outcome(target: target, result: "database gone; nothing to remove")
        }
        if let pid = MozillaProfiles.runningPID(directory) {
            return Outcome(target: target, result: "in use (pid \(pid)): quit the program first", failed: true)
        }
        guard let certutil = SetupTool.find("certutil", path: path) else {
            return Outcome(target: target, result: "not removed: certutil is not installed (apt install libnss3-tools)", failed: true)
        }
        let present: Set<String>
        do throws(SetupError) { present = Set(try NSSCertificates.list(directory, certutil: certutil).map(\.nickname)) } catch {
            return Outcome(target: target, result: error.message, failed: true)
        }
        var removed = 0
        var problems: [String] = []
        for nickname in nicknames where nickname.hasPrefix(Setup.rootNicknamePrefix) {
            guard present.contains(nickname) else {
                if !dryRun { state.remove(nss: directory, nickname: nickname) }
                continue
            }
            if dryRun { removed += 1; continue }
            let ran = SetupTool.run(certutil, ["-D", "-d", "sql:" + directory, "-n", nickname])
            if ran.status == 0 {
                removed += 1
                state.remove(nss: directory, nickname: nickname)
            } else {
                problems.append("certutil -D \(nickname) failed: \(ran.output)")
            }
        }
        let result = removed == 0 ? "none of Signet's roots left" : "\(dryRun ? "would remove" : "removed") \(removed) root\(removed == 1 ? "" : "s") Signet added"
        return Outcome(target: target, result: ([result] + problems).joined(separator: "; "), failed: !problems.isEmpty)
    }

    // MARK: GnuPG

    private func trustInTrustList(_ roots: [Root]) -> Outcome {
        let target = "gpg-agent (\(shown(trustList)))"
        switch SetupFile.read(trustList, limit: SetupFile.configLimit) {
        case .unusable(let reason):
            return Outcome(target: target, result: "\(shown(trustList)) \(reason); left as it is", failed: true)
        case .absent, .bytes:
            let file = MarkedLines(bytes: SetupFile.read(trustList, limit: SetupFile.configLimit).bytes ?? [])
            // A fingerprint on a line of the user's (trusted, or disabled with `!`) is theirs to decide.
            let users = Set(file.outsideLines.compactMap(TrustListLine.fingerprint))
            let lines = roots.filter { !users.contains($0.sha1) }.map { "\(TrustListLine.colons($0.sha1)) S" }
            var outcome = write(file, lines.isEmpty ? nil : lines, to: trustList, target: target)
            if outcome.result.hasPrefix("registered") {
                outcome.result = "added \(lines.count) root\(lines.count == 1 ? "" : "s") (flag S) (reload gpg-agent to use them: gpgconf --reload gpg-agent)"
            } else if outcome.result == "already registered" || (lines.isEmpty && outcome.result == "not registered") {
                outcome.result = "already trusted"
            }
            return outcome
        }
    }

    private func removeFromTrustList() -> Outcome {
        let target = "gpg-agent (\(shown(trustList)))"
        switch SetupFile.read(trustList, limit: SetupFile.configLimit) {
        case .absent: return Outcome(target: target, result: "no roots Signet added")
        case .unusable(let reason): return Outcome(target: target, result: "\(shown(trustList)) \(reason); left as it is", failed: true)
        case .bytes(let bytes):
            let file = MarkedLines(bytes: bytes)
            guard file.block != nil else { return Outcome(target: target, result: "no roots Signet added") }
            var outcome = write(file, nil, to: trustList, target: target)
            if outcome.result == "removed" { outcome.result = "removed the roots Signet added" }
            return outcome
        }
    }

    private func importIntoKeybox(_ roots: [Root], state: inout RootsState) -> Outcome {
        let target = "gpgsm keybox"
        guard let gpgsm = SetupTool.find("gpgsm", path: path) else {
            return Outcome(target: target, result: "skipped: gpgsm is not installed")
        }
        var added: [String] = [], had: [String] = [], problems: [String] = []
        for root in roots {
            if keyboxHas(root.sha1, gpgsm: gpgsm) {
                // Ours from an earlier run, or the user's own: either way nothing to do, and only ours stay recorded.
                if !state.keybox.contains(root.sha1) { had.append(root.subject) }
                continue
            }
            if dryRun { added.append(root.subject); continue }
            guard let file = TemporaryFile(root.pem) else { problems.append("cannot write a temporary file: \(String(cString: strerror(errno)))"); continue }
            defer { file.remove() }
            _ = FileIO.makeDirectories(gnupgHome)
            let ran = SetupTool.run(gpgsm, ["--batch", "--import", file.path])
            guard ran.status == 0, keyboxHas(root.sha1, gpgsm: gpgsm) else { problems.append("gpgsm --import failed: \(ran.output)"); continue }
            state.keybox.append(root.sha1)
            added.append(root.subject)
        }
        var parts: [String] = []
        if !added.isEmpty { parts.append("\(dryRun ? "would import" : "imported") \(added.joined(separator: "; "))") }
        if !had.isEmpty { parts.append("already has \(had.joined(separator: "; ")) (yours; left as it is)") }
        parts += problems
        if parts.isEmpty { parts.append("already imported") }
        return Outcome(target: target, result: parts.joined(separator: "; "), failed: !problems.isEmpty)
    }

    private func removeFromKeybox(state: inout RootsState) -> Outcome {
        let target = "gpgsm keybox"
        guard let gpgsm = SetupTool.find("gpgsm", path: path) else {
            return Outcome(target: target, result: "not removed: gpgsm is not installed", failed: true)
        }
        var removed = 0
        var problems: [String] = []
        for fingerprint in state.keybox {
            guard keyboxHas(fingerprint, gpgsm: gpgsm) else { if !dryRun { state.keybox.removeAll { $0 == fingerprint } }; continue }
            if dryRun { removed += 1; continue }
            let ran = SetupTool.run(gpgsm, ["--batch", "--yes", "--delete-keys", fingerprint])
            if ran.status == 0, !keyboxHas(fingerprint, gpgsm: gpgsm) {
                removed += 1
                state.keybox.removeAll { $0 == fingerprint }
            } else {
                problems.append("gpgsm --delete-keys \(fingerprint) failed: \(ran.output)")
            }
        }
        let result = "\(dryRun ? "would remove" : "removed") \(removed) root\(removed == 1 ? "" : "s") Signet imported"
        return Outcome(target: target, result: ([result] + problems).joined(separator: "; "), failed: !problems.isEmpty)
    }

    /// Whether gpgsm's keybox holds the certificate with this SHA-1 fingerprint.
    private func keyboxHas(_ fingerprint: String, gpgsm: String) -> Bool {
        let lines = SetupTool.runLines(gpgsm, ["--batch", "--with-colons", "--list-keys", fingerprint]) ?? []
        return lines.contains { $0.uppercased().hasPrefix("FPR:::::::::\(fingerprint):") }
    }
}

/// The certificates an NSS database holds, through `certutil`.
enum NSSCertificates {
    /// Nicknames and trust strings (`certutil -L`): each line after the header is `NICKNAME  TRUST`.
    static func list(_ directory: String, certutil: String) throws(SetupError) -> [(nickname: String, trust: String)] {
        guard let lines = SetupTool.runLines(certutil, ["-L", "-d", "sql:" + directory]) else {
            throw SetupError("certutil cannot list the certificates: \(SetupTool.run(certutil, ["-L", "-d", "sql:" + directory]).output)")
        }
        return parse(listing: lines)
    }

    /// Parses `certutil -L` lines: the trust is the last word (`C,,`, `u,u,u`, `,C,`), the nickname what is before it.
    static func parse(listing lines: [String]) -> [(nickname: String, trust: String)] {
        lines.compactMap { line in
            let trimmed = line.trimmingSpaces
            guard let space = trimmed.lastIndex(of: " ") else { return nil }
            let trust = String(trimmed[trimmed.index(after: space)...])
            guard trust.filter({ $0 == "," }).count == 2, trust.allSatisfy({ $0 == "," || $0.isLetter }) else { return nil }
            return (String(trimmed[..<space].trimmingSpaces), trust)
        }
    }

    /// The certificate with `nickname` as one line of base64 (`certutil -L -n NICK -a`, its lines joined: the same
    /// DER always gives the same text), nil when there is none.
    static func base64(of nickname: String, in directory: String, certutil: String) -> String? {
        guard let lines = SetupTool.runLines(certutil, ["-L", "-d", "sql:" + directory, "-n", nickname, "-a"]),
              let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN CERTIFICATE-----") }),
              let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END CERTIFICATE-----") }) else { return nil }
        return lines[(begin + 1)..<end].map(\.trimmingSpaces).joined()
    }
}

/// Lines of gpg-agent's `trustlist.txt`: `FINGERPRINT FLAGS`, `!FINGERPRINT` (disabled), `#` comments.
enum TrustListLine {
    /// The fingerprint a line names (40 hex digits, upper case; colons taken out), trusted or disabled; nil for others.
    static func fingerprint(_ line: String) -> String? {
        var text = line.trimmingSpaces
        if text.hasPrefix("!") { text = text.dropFirst().trimmingSpaces }
        guard !text.hasPrefix("#"), let word = text.split(separator: " ").first else { return nil }
        let hex = word.filter { $0 != ":" }
        guard hex.count == 40, hex.allSatisfy(\.isHexDigit) else { return nil }
        return hex.uppercased()
    }

    /// `AB:CD:…`, as gpg-agent writes its own lines.
    static func colons(_ hex: String) -> String {
        stride(from: 0, to: hex.count, by: 2).map { offset in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return String(hex[start..<hex.index(start, offsetBy: 2)])
        }.joined(separator: ":")
    }
}

/// What `--trust-roots` added: `nss<TAB>DIRECTORY<TAB>NICKNAME` and `keybox<TAB>FINGERPRINT` lines.
struct RootsState {
    var nss: [String: [String]] = [:]
    var keybox: [String] = []

    var isEmpty: Bool { nss.values.allSatisfy(\.isEmpty) && keybox.isEmpty }
    var nssDirectories: [String] { nss.keys.sorted() }

    init(read path: String) {
        guard let text = FileIO.readText(path, limit: SetupFile.configLimit) else { return }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if fields.count == 3, fields[0] == "nss" { add(nss: fields[1], nickname: fields[2]) }
            if fields.count == 2, fields[0] == "keybox", !keybox.contains(fields[1]) { keybox.append(fields[1]) }
        }
    }

    mutating func add(nss directory: String, nickname: String) {
        if !(nss[directory] ?? []).contains(nickname) { nss[directory, default: []].append(nickname) }
    }

    mutating func remove(nss directory: String, nickname: String) {
        nss[directory]?.removeAll { $0 == nickname }
        if nss[directory]?.isEmpty == true { nss[directory] = nil }
    }

    /// Writes the state (0600, its folder 0700); an empty state removes the file.
    func write(to path: String) -> Bool {
        if isEmpty { return unlink(path) == 0 || errno == ENOENT }
        var text = "# Written by `signet setup --trust-roots`: what it added, for `signet setup --undo`.\n"
        for directory in nssDirectories { for nickname in nss[directory] ?? [] { text += "nss\t\(directory)\t\(nickname)\n" } }
        for fingerprint in keybox { text += "keybox\t\(fingerprint)\n" }
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        return (directory.isEmpty || FileIO.makeDirectories(directory)) && FileIO.writeAtomically(path, text: text, mode: 0o600)
    }
}

/// A file in `$TMPDIR` (or /tmp) holding a public certificate for a tool to read; removed after use.
struct TemporaryFile {
    let path: String

    init?(_ text: String) {
        let base = (getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp") + "/signet-root-XXXXXX"
        var template = Array(base.utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { return nil }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let written = Array(text.utf8).withUnsafeBytes { (try? FileIO.writeAll(fd, $0)) != nil }
        close(fd)
        guard written else { unlink(path); return nil }
    }

    func remove() { unlink(path) }
}
