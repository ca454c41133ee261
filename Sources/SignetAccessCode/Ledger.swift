#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Which code an attempt is for: the user's access code or the SO code / PUK.
/// They are counted separately.
public enum CodeRole: String, Sendable, CaseIterable {
    case user, so
}

/// A token's identity for the ledger: manufacturer, model and serial number
/// (not the slot, which changes, nor the label alone, which is not unique).
public struct TokenIdentity: Sendable, Hashable, CustomStringConvertible {
    public var manufacturer: String
    public var model: String
    public var serial: String

    public init(manufacturer: String, model: String, serial: String) {
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
    }

    public var description: String { "\(manufacturer) \(model) serial \(serial)" }

    /// A file name that encodes the identity unambiguously.
    var fileKey: String { Hex.encode(Array("\(manufacturer)\u{0}\(model)\u{0}\(serial)".utf8)) }
}

/// When a lock started, on both clocks.
struct LockRecord: Equatable, Sendable {
    var wallStart: Double
    var bootStart: Double
    var bootID: String
}

/// The ledger's record for one code of one token.
struct CodeRecord: Equatable, Sendable {
    /// Wrong (or unresolved) codes in a row.
    var failures = 0
    /// An attempt was recorded and the outcome not yet written: it counts.
    var pending = false
    var lock: LockRecord?
}

/// Both records of one token.
struct TokenRecord: Equatable, Sendable {
    var user = CodeRecord()
    var so = CodeRecord()

    subscript(role: CodeRole) -> CodeRecord {
        get { role == .user ? user : so }
        set { if role == .user { user = newValue } else { so = newValue } }
    }
}

/// Why the ledger cannot be trusted.
public struct LedgerDamage: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// The durable ledger of access-code attempts, one file per token under
/// `$XDG_STATE_HOME/signet/ledger/`, plus an index of the tokens that have one.
///
/// Writes are atomic and durable (temporary file, fsync, rename, fsync of the
/// directory). Every file carries a checksum; a file that does not parse, fails
/// its checksum, or is missing while the index lists it, is damage, and damage
/// fails closed. Each token has a lock file: `flock` on it serialises attempts
/// across threads and processes.
///
/// The checksum catches truncation and corruption, not a deliberate edit by
/// the same user: nothing stored in the user's own files can. The token's
/// own retry counter, which Signet never spends to its last try, is the
/// backstop against that.
final class LedgerStore: Sendable {
    let directory: String
    private var indexPath: String { directory + "/index" }

    init(directory: String) {
        self.directory = directory
    }

    /// Runs `body` holding the token's lock, with its record (or damage).
    /// - Throws: `LedgerDamage` when the lock file cannot be opened.
    func withExclusiveAccess<R>(to identity: TokenIdentity, _ body: (LedgerHandle) throws -> R) throws -> R {
        guard FileIO.makeDirectories(directory) else { throw LedgerDamage(reason: "cannot create \(directory)") }
        let lockPath = directory + "/" + identity.fileKey + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LedgerDamage(reason: "cannot open \(lockPath): \(System.describe(errno))") }
        defer { close(fd) }
        do throws(SystemError) {
            try System.call("flock") { flock(fd, LOCK_EX) }
        } catch {
            throw LedgerDamage(reason: "cannot lock \(lockPath)")
        }
        defer { flock(fd, LOCK_UN) }
        return try body(LedgerHandle(store: self, identity: identity))
    }

    func path(for identity: TokenIdentity) -> String { directory + "/" + identity.fileKey + ".ledger" }

    /// Reads the token's record; a token never seen before gets an empty one.
    func read(_ identity: TokenIdentity) -> Result<TokenRecord, LedgerDamage> {
        let index: Set<String>
        switch readIndex() {
        case .success(let value): index = value
        case .failure(let damage): return .failure(damage)
        }
        let file = path(for: identity)
        guard let text = FileIO.readText(file, limit: 1 << 16) else {
            if FileIO.exists(file) { return .failure(LedgerDamage(reason: "the access-code ledger \(file) cannot be read")) }
            if index.contains(identity.fileKey) {
                return .failure(LedgerDamage(reason: "the access-code ledger for \(identity) is missing"))
            }
            return .success(TokenRecord())
        }
        return LedgerCodec.decode(text, identity: identity).mapError { LedgerDamage(reason: "the access-code ledger \(file) is damaged: \($0.reason)") }
    }

    /// Writes the token's record durably, adding it to the index first.
    /// - Throws: `LedgerDamage` when anything could not be written.
    func write(_ record: TokenRecord, for identity: TokenIdentity) throws {
        var index = (try? readIndex().get()) ?? []
        if !index.contains(identity.fileKey) {
            index.insert(identity.fileKey)
            let text = LedgerCodec.sealed(["signet-ledger-index 1"] + index.sorted())
            guard FileIO.writeAtomically(indexPath, text: text) else { throw LedgerDamage(reason: "cannot write \(indexPath)") }
        }
        guard FileIO.writeAtomically(path(for: identity), text: LedgerCodec.encode(record, identity: identity)) else {
            throw LedgerDamage(reason: "cannot write the access-code ledger in \(directory)")
        }
    }

    /// The set of tokens with a ledger. A missing index is fine only while no ledger exists.
    private func readIndex() -> Result<Set<String>, LedgerDamage> {
        guard let text = FileIO.readText(indexPath, limit: 1 << 20) else {
            if FileIO.exists(indexPath) { return .failure(LedgerDamage(reason: "the ledger index cannot be read")) }
            if ledgerFilesExist() { return .failure(LedgerDamage(reason: "the ledger index is missing")) }
            return .success([])
        }
        guard let lines = LedgerCodec.unseal(text), lines.first == "signet-ledger-index 1" else {
            return .failure(LedgerDamage(reason: "the ledger index is damaged"))
        }
        return .success(Set(lines.dropFirst()))
    }

    private func ledgerFilesExist() -> Bool {
        FileIO.names(in: directory).contains { $0.hasSuffix(".ledger") }
    }

    /// Replaces every ledger with records that start a full lock now: the way
    /// out of damage that gives no free tries.
    func repair(identities: [TokenIdentity], lock: LockRecord) throws {
        guard FileIO.makeDirectories(directory) else { throw LedgerDamage(reason: "cannot create \(directory)") }
        let locked = CodeRecord(failures: 0, pending: false, lock: lock)
        let existing = (try? readIndex().get()) ?? []
        let text = LedgerCodec.sealed(["signet-ledger-index 1"] + existing.union(identities.map(\.fileKey)).sorted())
        guard FileIO.writeAtomically(indexPath, text: text) else { throw LedgerDamage(reason: "cannot write \(indexPath)") }
        for identity in identities {
            guard FileIO.writeAtomically(path(for: identity), text: LedgerCodec.encode(TokenRecord(user: locked, so: locked), identity: identity)) else {
                throw LedgerDamage(reason: "cannot write \(path(for: identity))")
            }
        }
    }
}

/// Access to one token's record while its lock is held.
struct LedgerHandle {
    let store: LedgerStore
    let identity: TokenIdentity
    func read() -> Result<TokenRecord, LedgerDamage> { store.read(identity) }
    func write(_ record: TokenRecord) throws { try store.write(record, for: identity) }
}

/// The text format: one `key value` line each, and a checksum line last.
enum LedgerCodec {
    static func encode(_ record: TokenRecord, identity: TokenIdentity) -> String {
        var lines = ["signet-access-ledger 1", "identity \(identity.fileKey)"]
        for role in CodeRole.allCases {
            let entry = record[role]
            let lock = entry.lock.map { "\($0.wallStart),\($0.bootStart),\($0.bootID)" } ?? "-"
            lines.append("\(role.rawValue) failures=\(entry.failures) pending=\(entry.pending ? 1 : 0) lock=\(lock)")
        }
        return sealed(lines)
    }

    static func decode(_ text: String, identity: TokenIdentity) -> Result<TokenRecord, LedgerDamage> {
        guard let lines = unseal(text) else { return .failure(LedgerDamage(reason: "checksum mismatch or truncated")) }
        guard lines.count == 4, lines[0] == "signet-access-ledger 1", lines[1] == "identity \(identity.fileKey)" else {
            return .failure(LedgerDamage(reason: "unexpected layout"))
        }
        var record = TokenRecord()
        for (offset, role) in CodeRole.allCases.enumerated() {
            let fields = lines[2 + offset].split(separator: " ")
            guard fields.count == 4, fields[0] == role.rawValue,
                  fields[1].hasPrefix("failures="), let failures = Int(fields[1].dropFirst(9)), failures >= 0,
                  fields[2] == "pending=0" || fields[2] == "pending=1",
                  fields[3].hasPrefix("lock=") else {
                return .failure(LedgerDamage(reason: "bad \(role.rawValue) line"))
            }
            var entry = CodeRecord(failures: failures, pending: fields[2] == "pending=1", lock: nil)
            let lock = fields[3].dropFirst(5)
            if lock != "-" {
                let parts = lock.split(separator: ",", maxSplits: 2)
                guard parts.count == 3, let wall = Double(parts[0]), let boot = Double(parts[1]), wall.isFinite, boot.isFinite else {
                    return .failure(LedgerDamage(reason: "bad lock on the \(role.rawValue) line"))
                }
                entry.lock = LockRecord(wallStart: wall, bootStart: boot, bootID: String(parts[2]))
            }
            record[role] = entry
        }
        return .success(record)
    }

    /// `lines` plus a final `checksum <FNV-1a 64>` line over them.
    static func sealed(_ lines: [String]) -> String {
        let body = lines.joined(separator: "\n") + "\n"
        return body + "checksum " + String(fnv1a(body), radix: 16) + "\n"
    }

    /// The lines before a valid checksum line, or `nil`.
    static func unseal(_ text: String) -> [String]? {
        guard text.hasSuffix("\n") else { return nil }
        var lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let last = lines.popLast(), last.hasPrefix("checksum ") else { return nil }
        let body = lines.joined(separator: "\n") + "\n"
        guard String(fnv1a(body), radix: 16) == last.dropFirst(9) else { return nil }
        return lines
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}
