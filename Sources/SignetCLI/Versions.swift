#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import SignetCore
import SignetPCSC
import SignetPKCS11

/// The versions a helpdesk asks for, for `signet version` and `signet report`: Signet, OpenSSL,
/// p11-kit, pcsc-lite, and the PKCS#11 modules Signet loads with what each says about itself (CK_INFO).
/// Nothing here fails: what cannot be found is reported as such. This code does not contact pcscd (a module
/// such as OpenSC may when it is initialised, as for `signet tokens`).
enum Versions {
    /// The lines `signet version` prints.
    static func lines() -> [String] {
        var lines = ["signet \(SignetCommand.version)", "OpenSSL: \(String(cString: COpenSSL_versionText()))"]
        lines.append("p11-kit: \(library("p11_kit_modules_load", package: "libp11-kit"))")
        lines.append("pcsc-lite: \(library("SCardEstablishContext", package: "libpcsclite")); built with \(PCSCContext.headerVersion)")
        lines += moduleLines()
        return lines
    }

    /// The PKCS#11 modules as `signet tokens` loads them (Signet's configuration, else p11-kit's registered modules).
    static func moduleLines() -> [String] {
        SoftwareTokens.prepareEnvironment()
        let context: PKCS11Context
        do {
            context = try PKCS11Context()
        } catch {
            return ["PKCS#11 modules: none could be loaded (\(error.description))"]
        }
        var lines = ["PKCS#11 modules: \(context.modules.isEmpty ? "none" : "\(context.modules.count)")"]
        for module in context.modules {
            let info = module.info
            lines.append("  \(module.name) (\(module.path)): \(info.libraryDescription) \(info.libraryVersion), "
                         + "by \(info.manufacturer), Cryptoki \(info.cryptokiVersion)")
        }
        for failure in context.failures { lines.append("  \(failure.path): could not be loaded (\(failure.reason))") }
        return lines
    }

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
