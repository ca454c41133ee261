import ArgumentParser
import FoundationEssentials
import SignetCore
import SignetMail
import SignetOpenSSL

/// `signet trust add|list|remove`.
struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "The CA certificates Signet trusts (to build chains and verify mail).",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Trust the CA certificates in a file (PEM bundle, DER or PKCS#7).")
        @Argument(help: "The file with the CA certificates.")
        var file: String

        func run() throws {
            let contents = try readCertificateFile(file)
            for certificate in contents.certificates where !certificate.isAuthority {
                Console.error(Console.safe("Skipped \(certificate.subject): it is not a CA certificate."))
            }
            let authorities = contents.certificates.filter(\.isAuthority)
            guard !authorities.isEmpty else { throw CLIError(description: "\(file) holds no CA certificate; nothing was added.") }
            try TrustCommand.addAuthorities(authorities, trustRoots: true)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the trusted CA certificates.")
        @OptionGroup var output: OutputOptions

        struct Entry: Codable {
            var id: String
            var subject: String
            var root: Bool
            var notAfter: String
            var validity: String
            var sha256: String
        }

        func run() throws {
            let entries = TrustStore().entries().map {
                Entry(id: $0.id, subject: $0.certificate.subject, root: $0.certificate.isSelfSigned, notAfter: Dates.iso($0.certificate.notAfter),
                      validity: $0.certificate.validity().rawValue, sha256: $0.certificate.sha256)
            }
            if output.json { return try JSONOutput.print(entries) }
            if entries.isEmpty { print("No CA certificates are trusted yet. Add your CA's root with `signet trust add ROOT.pem`.") }
            for entry in entries {
                let mark = entry.validity == "valid" ? "" : "  \(entry.validity.uppercased())"
                print(Console.safe("\(entry.id)  \(entry.root ? "root" : "intermediate")  \(entry.subject)  until \(entry.notAfter.prefix(10))\(mark)"))
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Stop trusting a CA certificate.")
        @Argument(help: "Its id from `signet trust list` (8 or more hex digits of the SHA-256 fingerprint).")
        var id: String

        func run() throws {
            let removed: [Certificate]
            do { removed = try TrustStore().remove(id: id) } catch { throw CLIError(description: "\(error)") }
            guard let certificate = removed.first else { throw CLIError(description: "No trusted certificate has the id \(id) (see `signet trust list`).") }
            print(Console.safe("No longer trusted: \(certificate.subject)."))
        }
    }

    /// Adds intermediates at once and roots when `trustRoots` or the user confirms; reports each.
    /// - Returns: the certificates added.
    @discardableResult
    static func addAuthorities(_ authorities: [Certificate], trustRoots: Bool) throws -> [Certificate] {
        let store = TrustStore()
        var added: [Certificate] = []
        for authority in authorities {
            if store.contains(authority) { continue }
            if authority.isSelfSigned && !trustRoots {
                let question = "Trust the root CA \(authority.subject) (SHA-256 \(authority.sha256.prefix(16))…) for verifying mail? [y/N] "
                guard let answer = Confirm.ask(question) else {
                    Console.error(Console.safe("Not trusted: root CA \(authority.subject); pass --trust-roots to trust it."))
                    continue
                }
                guard answer else { Console.error(Console.safe("Not trusted: root CA \(authority.subject).")); continue }
            }
            try store.add(authority)
            added.append(authority)
            print(Console.safe("Trusted \(authority.isSelfSigned ? "root" : "intermediate") CA \(authority.subject) (id \(TrustStore.id(authority)))."))
        }
        return added
    }
}
