#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// The versions of the shared libraries the agent links, for `signet version` and
/// `signet report` (the `versions` request). Nothing here fails: what cannot be found
/// is reported as such. In the agent because it is the process that loads them.
enum LibraryVersions {
    /// The shared library that holds `symbol` in this process, with the distribution's package version
    /// (Debian's dpkg database) when it has a package whose name starts with `package`.
    static func library(_ symbol: String, package: String) -> String {
        guard let address = dlsym(nil, symbol) else { return "not loaded" }
        // The mapping that holds the symbol, from /proc/self/maps (glibc's dladdr is not visible to Swift).
        let value = UInt(bitPattern: address)
        var file = "loaded (file unknown)"
        for line in (FileIO.readText("/proc/self/maps", limit: 4 << 20) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            let bounds = fields.first?.split(separator: "-").compactMap { UInt($0, radix: 16) } ?? []
            guard fields.count >= 6, bounds.count == 2, bounds[0] <= value, value < bounds[1] else { continue }
            file = fields[5...].joined(separator: " ")
            break
        }
        guard let version = packageVersion(package) else { return file }
        return "\(version) (\(file))"
    }

    /// The version of the installed Debian package whose name starts with `prefix` (not -dev or -doc); nil elsewhere.
    static func packageVersion(_ prefix: String, status path: String = "/var/lib/dpkg/status") -> String? {
        guard let text = FileIO.readText(path, limit: 64 << 20) else { return nil }
        var rest = Substring(text)
        while let found = rest.firstRange(of: "Package: \(prefix)") {
            let stanzaEnd = rest[found.upperBound...].firstRange(of: "\n\n")?.lowerBound ?? rest.endIndex
            let stanza = rest[found.lowerBound..<stanzaEnd]
            rest = rest[stanzaEnd...]
            let name = stanza.dropFirst("Package: ".count).prefix { $0 != "\n" }
            guard found.lowerBound == text.startIndex || text[text.index(before: found.lowerBound)] == "\n",
                  !name.hasSuffix("-dev"), !name.hasSuffix("-doc"), stanza.contains("\nStatus: install ok installed"),
                  let version = stanza.firstRange(of: "\nVersion: ") else { continue }
            return String(stanza[version.upperBound...].prefix { $0 != "\n" })
        }
        return nil
    }
}
