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

    public init(entries: [(key: String, value: String)] = []) { self.entries = entries }

    public static func == (lhs: SignetConfig, rhs: SignetConfig) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    /// Parses configuration text. Lines that are not `key = value` are ignored.
    public init(parsing text: String) {
        entries = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let trimmed = line.trimmingSpaces()
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<eq].trimmingSpaces()
            let value = trimmed[trimmed.index(after: eq)...].trimmingSpaces()
            guard !key.isEmpty else { continue }
            entries.append((String(key), String(value)))
        }
    }

    /// Every value given for `key`, in order.
    public func values(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }

    /// The last value given for `key` (the user's overrides the administrator's).
    public func value(_ key: String) -> String? { values(key).last }

    /// The administrator's and the user's files, merged. A missing file is empty.
    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet") -> SignetConfig {
        var merged = SignetConfig()
        for file in [systemDirectory + "/config", paths.config + "/config"] {
            if let text = FileIO.readText(file, limit: 1 << 20) {
                merged.entries += SignetConfig(parsing: text).entries
            }
        }
        return merged
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
