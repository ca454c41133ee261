#if canImport(Glibc)
import Glibc
#endif
import SignetCore

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
    /// - Throws: `SetupError` when modutil fails.
    static func list(_ directory: String, modutil: String) throws(SetupError) -> [Entry] {
        switch SetupFile.read(directory + "/pkcs11.txt", limit: SetupFile.nssListLimit) {
        case .bytes(let bytes): return parse(pkcs11Text: String(decoding: bytes, as: UTF8.self))
        case .unusable(let reason): throw SetupError("\(directory)/pkcs11.txt \(reason); left as it is")
        case .absent: break
        }
        guard FileIO.exists(directory + "/cert9.db") else { return [] }
        let listed = SetupTool.run(modutil, ["-list", "-dbdir", "sql:" + directory])
        guard listed.status == 0 else { throw SetupError("modutil cannot list the modules: \(listed.output)") }
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
