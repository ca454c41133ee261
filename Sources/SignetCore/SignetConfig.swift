#if canImport(Glibc)
import Glibc
#endif

/// Signet's configuration: `key = value` lines, `#` comments, keys may repeat.
///
/// Read from `/etc/signet/config` (the administrator's) and then
/// `$XDG_CONFIG_HOME/signet/config` (the user's). Known keys:
/// - `pkcs11-module = /path/to/module.so` — load this module as well (repeatable);
/// - `p11-kit-modules = no` — do not load the modules registered with p11-kit.
public struct SignetConfig: Sendable, Equatable {
    /// Entries in file order, the administrator's first.
    public private(set) var entries: [(key: String, value: String)]
    /// Where each entry was written (file and line number), for messages about a bad value.
    private var origins: [(file: String, line: Int)]
    /// Files that were not read because others could have written them (`ProtectedFile`): each problem, naming the
    /// file or directory and what to do. Nothing in such a file is obeyed.
    public private(set) var refusals: [String] = []

    public init(entries: [(key: String, value: String)] = []) {
        self.entries = entries
        origins = entries.map { _ in ("the configuration", 0) }
    }

    public static func == (lhs: SignetConfig, rhs: SignetConfig) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    /// Parses configuration text. Lines that are not `key = value` are ignored.
    public init(parsing text: String) { self.init(parsing: text, file: "the configuration") }

    /// Parses configuration text read from `file` (named in messages about its values).
    public init(parsing text: String, file: String) {
        entries = []
        origins = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingSpaces()
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<eq].trimmingSpaces()
            let value = trimmed[trimmed.index(after: eq)...].trimmingSpaces()
            guard !key.isEmpty else { continue }
            entries.append((String(key), String(value)))
            origins.append((file, index + 1))
        }
    }

    /// A value that is not one its key takes, and where it was written.
    public struct BadValue: Error, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var key: String
        public var value: String
        /// What the key takes ("a number from 1 to 65536").
        public var expected: String

        public var description: String { "\(file) line \(line): \(key) = \(value) is not \(expected)" }
    }

    /// The last value given for `key` as a number within `range`, or `nil` when the key is not given.
    /// `inf`, `nan` and numbers out of `range` are refused rather than passed on to overflow a conversion.
    /// - Throws: `BadValue`, naming the file and line, when the value is not such a number.
    public func number(_ key: String, in range: ClosedRange<Double>) throws(BadValue) -> Double? {
        guard let index = entries.lastIndex(where: { $0.key == key }) else { return nil }
        guard let value = Double(entries[index].value), value.isFinite, range.contains(value) else {
            let bound = { (value: Double) in value == value.rounded() ? String(Int(value)) : String(value) }
            throw BadValue(file: origins[index].file, line: origins[index].line, key: key, value: entries[index].value,
                           expected: "a number from \(bound(range.lowerBound)) to \(bound(range.upperBound))")
        }
        return value
    }

    /// The last value given for `key` as a whole number within `range`, or `nil` when the key is not given.
    /// - Throws: `BadValue`, naming the file and line, when the value is not such a number.
    public func integer(_ key: String, in range: ClosedRange<Int>) throws(BadValue) -> Int? {
        guard let index = entries.lastIndex(where: { $0.key == key }) else { return nil }
        guard let value = Int(entries[index].value), range.contains(value) else {
            throw BadValue(file: origins[index].file, line: origins[index].line, key: key, value: entries[index].value,
                           expected: "a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// Every value given for `key`, in order.
    public func values(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }

    /// Where each line giving `key` was written, as "FILE line N", in file order.
    public func origins(of key: String) -> [String] {
        entries.indices.filter { entries[$0].key == key }.map { "\(origins[$0].file) line \(origins[$0].line)" }
    }

    /// The last value given for `key` (the user's overrides the administrator's).
    public func value(_ key: String) -> String? { values(key).last }

    /// The administrator's and the user's files, merged. A missing file is empty. A file that others could
    /// have written (`ProtectedFile`: the administrator's must be root's, the user's the user's or root's, neither
    /// writable by group or others, nor in a directory they can write) is not read: its problems are in `refusals`.
    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet") -> SignetConfig {
        var merged = SignetConfig()
        for (file, owner) in [(systemDirectory + "/config", ProtectedFile.Owner.administrator), (paths.config + "/config", .user)] {
            switch ProtectedFile.read(file, owner: owner, limit: 1 << 20, risk: "make Signet run their program or load their library as you") {
            case .absent: break
            case .refused(let problems): merged.refusals += problems
            case .text(let text):
                let parsed = SignetConfig(parsing: text, file: file)
                merged.entries += parsed.entries
                merged.origins += parsed.origins
            }
        }
        return merged
    }

    /// Why `refusals` keep the agent from unlocking or using keys, for its log, `signet status` and each refused request.
    public static func refusalAdvice(_ refusals: [String]) -> String {
        "Signet does not obey a configuration that someone else could have written (\(refusals.joined(separator: "; "))). "
            + "It refuses to unlock tokens or use keys until that is fixed; then run `signet agent reload`."
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and carriage returns.
    public func trimmingSpaces() -> SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return self[endIndex...] }
        let end = lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}
