import ArgumentParser
import FoundationEssentials
import Glibc
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetMail
import SignetOpenSSL

/// `signet cert import|list|show|export|repair|delete`.
struct CertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert",
        abstract: "Install, list, show, export, repair and delete certificates on tokens.",
        subcommands: [Import.self, List.self, Show.self, Export.self, Repair.self, Delete.self, Find.self, Publish.self, Unpublish.self]
    )

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "import",
            abstract: "Install the certificate your CA issued next to its key on the token.",
            discussion: """
            Reads PEM (one or many certificates), DER, or a PKCS#7 bundle (.p7b/.p7c, DER or PEM, \
            also when labelled BEGIN CERTIFICATE). The certificate whose public key matches a key on a \
            token is stored with that key's id; the issuing CAs go to Signet's trust store (a new root \
            only after you confirm, or with --trust-roots). A certificate whose key is on no token is \
            refused and nothing is written. Importing the same file twice changes nothing.

            A root Signet trusts can also go to your programs, as `signet setup --trust-roots` adds it: \
            on a terminal you are asked; --trust-roots-in-programs does it without asking (and implies \
            --trust-roots).
            """
        )
        @Argument(help: "The certificate file from the CA.")
        var file: String
        @Option(name: .long, help: "Only look for the key on this token (PKCS#11 URI).")
        var token: String?
        @Flag(name: .customLong("trust-roots"), help: "Trust the root CA certificates in the file without asking.")
        var trustRoots = false
        @Flag(name: .customLong("trust-roots-in-programs"), help: ArgumentHelp(
            "As --trust-roots, and add them to the NSS databases `signet setup` registered in, gpg-agent's trustlist and gpgsm's keybox for e-mail, without asking (`signet setup --undo` takes them out)."))
        var trustRootsInPrograms = false
        @Flag(name: .long, help: "Replace a different certificate already installed for the same key.")
        var replace = false

        func run() throws {
            let contents = try readCertificateFile(file)
            let client = try Agent.connect()
            let inventory = try Inventory.load(client: client, token: token)
            let leaves = try CertificateInstaller.install(contents.certificates, file: file, inventory: inventory, token: token,
                                                          replace: replace, client: client) { outcome in
                switch outcome {
                case .alreadyInstalled(let certificate):
                    print(Console.safe("Already installed: \(certificate.subject) (nothing changed)."))
                case .installed(let certificate, let key):
                    print(Console.safe("Installed \(certificate.subject) (serial \(certificate.serial), valid until \(Dates.day(certificate.notAfter))) "
                                       + "with key \"\(key.label)\"; id \(TrustStore.id(certificate)) (PKCS#11 key id \(Hex.encode(key.id)))."))
                }
            }
            let issuers = contents.certificates.filter { $0.isAuthority }
            let added = try TrustCommand.addAuthorities(issuers, trustRoots: trustRoots || trustRootsInPrograms)
            let store = TrustStore()
            try SetupCommand.trustInPrograms(issuers.filter { $0.isSelfSigned && store.contains($0) }, ask: !trustRootsInPrograms,
                                             newlyTrusted: added.contains(where: \.isSelfSigned))
            let offeredRoot = issuers.contains { $0.isSelfSigned }
            for leaf in leaves where !offeredRoot && (TrustStore().chain(for: leaf).last.map { !$0.isSelfSigned } ?? true) {
                Console.error(Console.safe("Note: Signet does not yet trust the root CA of \(leaf.subject); add it with `signet trust add ROOT.pem`."))
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list",
            abstract: "List certificates on the tokens: subject, issuer, validity, usages, whether the key is present.",
            discussion: "Marks the default certificates for signing and for encryption (pin them with signing-certificate = ID and encryption-certificate = ID in the configuration)."
        )
        @Option(name: .long, help: "Only this token (PKCS#11 URI).")
        var token: String?
        @OptionGroup var output: OutputOptions

        func run() throws {
            let client = try Agent.connect()
            let inventory = try Inventory.load(client: client, token: token)
            let config = SignetConfig.load()
            // The pinned defaults come from the configuration: one that others could have written is not read.
            for refusal in config.refusals { Console.error(Console.safe("Warning: \(refusal); the configuration is not read")) }
            let signing = CertificateChoice.choose(.signing, from: inventory.certificates, config: config)
            let encryption = CertificateChoice.choose(.encryption, from: inventory.certificates, config: config)
            let entries = inventory.certificates.map { installed in
                CertificateReport(installed, defaults: [signing?.id == installed.id ? "signing" : nil,
                                                        encryption?.id == installed.id ? "encryption" : nil].compactMap { $0 })
            }
            if output.json { return try JSONOutput.print(entries) }
            if entries.isEmpty { print("No certificates are installed. Install one with `signet cert import FILE` or `signet import FILE.p12`.") }
            for entry in entries { entry.printSummary() }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show",
            abstract: "Show one certificate in full: fingerprints, alternative names, CRL distribution points, Active Directory mapping."
        )
        @Argument(help: "The certificate's id from `signet cert list` (8 or more hex digits of its SHA-256 fingerprint), or its key's PKCS#11 id in hex.")
        var id: String
        @OptionGroup var output: OutputOptions

        func run() throws {
            let client = try Agent.connect()
            let inventory = try Inventory.load(client: client)
            let installed = try inventory.certificate(id)
            let report = CertificateReport(installed, defaults: [], full: true)
            if output.json { return try JSONOutput.print(report) }
            report.printSummary()
            report.printDetails()
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export", abstract: "Write a public certificate to share with correspondents.")
        @Argument(help: "The certificate's id from `signet cert list`, or its key's PKCS#11 id in hex.")
        var id: String
        @Flag(name: .long, help: "Add the issuing CA certificates from the trust store (PEM only).")
        var chain = false
        @Flag(name: .long, help: "Write DER instead of PEM.")
        var der = false
        @Option(name: [.customShort("o"), .long], help: "Write to this file (default: standard output).")
        var out: String?

        func run() throws {
            guard !(chain && der) else { throw CLIError(description: "DER holds one certificate; leave out --der to export a chain as PEM.") }
            let client = try Agent.connect()
            let installed = try Inventory.load(client: client).certificate(id)
            var bytes: [UInt8]
            if der {
                bytes = installed.certificate.der
            } else {
                bytes = Array(installed.certificate.pem.utf8)
                if chain { for issuer in TrustStore().chain(for: installed.certificate) { bytes += Array(issuer.pem.utf8) } }
            }
            try writeOutput(bytes, to: out)
            if let out { Console.error(Console.safe("Wrote \(installed.certificate.subject) to \(out).")) }
        }
    }

    struct Repair: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "repair",
            abstract: "Re-link certificates to their keys (by public key) where the ids disagree; reports what changed.",
            discussion: "Fixes \"private key missing\" where the key is on the token but the certificate carries another id. The token must be unlocked."
        )
        @Option(name: .long, help: "Only this token (PKCS#11 URI).")
        var token: String?

        func run() throws {
            let client = try Agent.connect()
            let changed = try CertificateInstaller.relink(try Inventory.load(client: client, token: token), client: client) { outcome in
                switch outcome {
                case .noKey(let installed):
                    print(Console.safe("No key on the token for \(installed.certificate.subject) (id \(installed.id)); left as it is."))
                case .relinked(let installed, let key):
                    print(Console.safe("Re-linked \(installed.certificate.subject): certificate id \(Hex.encode(installed.entry.id)) → \(Hex.encode(key.id)) (key \"\(key.label)\")."))
                }
            }
            print(changed == 0 ? "Every certificate is linked to its key; nothing changed." : "Repaired \(changed) certificate(s).")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a certificate from its token (the key stays).")
        @Argument(help: "The certificate's id from `signet cert list`, or its key's PKCS#11 id in hex.")
        var id: String
        @Flag(name: .long, help: "Do not ask for confirmation.")
        var yes = false

        func run() throws {
            let client = try Agent.connect()
            let installed = try Inventory.load(client: client).certificate(id)
            if !yes {
                guard let answer = Confirm.ask("Delete the certificate \(installed.certificate.subject) (serial \(installed.certificate.serial)) from the token? [y/N] ") else {
                    throw CLIError(description: "There is no terminal to confirm on; add --yes to delete without asking.")
                }
                guard answer else { print("Nothing deleted."); return }
            }
            _ = try Agent.call(.deleteObject(object: installed.entry.uri), client: client)
            print(Console.safe("Deleted \(installed.certificate.subject)."))
        }
    }
}

/// How `cert list` and `cert show` print a `CertificateReport`.
extension CertificateReport {
    /// Prints one line of a certificate's description; names, addresses and URIs come from the certificate.
    private func line(_ text: String) { print(Console.safe(text)) }

    func printSummary() {
        let marks = defaults.isEmpty ? "" : "  [default for \(defaults.joined(separator: " and "))]"
        line("\(id)  \(subject)\(marks)")
        line("  issuer:   \(issuer)")
        line("  serial:   \(serial)   key: \(key)")
        let state = switch validity {
        case "expired": "  EXPIRED"
        case "not-yet-valid": "  NOT YET VALID"
        default: ""
        }
        line("  valid:    \(notBefore) to \(notAfter)\(state)")
        line("  usage:    \((keyUsage ?? ["any"]).joined(separator: ", "))  extended: \((extendedKeyUsage ?? ["any"]).joined(separator: ", "))")
        line("  for:      \(purposes.isEmpty ? "nothing Signet uses" : purposes.joined(separator: ", "))")
        line("  key:      \(keyPresent ? "present on the token" : "MISSING (no key on the token has this certificate's public key; see `signet cert repair`)")")
        line("  uri:      \(uri)")
    }

    func printDetails() {
        line("  SHA-256:  \(sha256 ?? "")")
        line("  SHA-1:    \(sha1 ?? "")")
        for name in alternativeNames ?? [] { line("  alt name: \(name)") }
        for point in crlDistributionPoints ?? [] { line("  CRL:      \(point)") }
        line("  AD mapping (altSecurityIdentities): \(activeDirectoryMapping ?? "")")
        for upn in userPrincipalNames ?? [] { line("  AD UPN:   \(upn)") }
    }
}

/// Writes `bytes` to `path` (atomically, with `mode`), or to standard output when nil or "-".
func writeOutput(_ bytes: [UInt8], to path: String?, mode: mode_t = 0o644) throws {
    if let path, path != "-" {
        guard FileIO.writeAtomically(path, bytes: bytes, mode: mode) else { throw CLIError(description: "Could not write \(path).") }
    } else {
        do {
            try bytes.withUnsafeBytes { try FileIO.writeAll(1, $0) }
        } catch {
            throw CLIError(description: "Could not write to standard output: \(error).")
        }
    }
}
