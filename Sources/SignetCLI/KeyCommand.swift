import ArgumentParser
import FoundationEssentials
import SignetAgentProtocol
import SignetCore
import SignetMail
import SignetOpenSSL

/// `signet key generate|list`.
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Generate keys on a token and list them with their certificates.",
        subcommands: [Generate.self, List.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "generate",
            abstract: "Generate a key pair on the token; the private key is sensitive and can never be exported.",
            discussion: "The token must be unlocked (`signet unlock`). RSA below 2048 bits is refused."
        )
        enum KeyType: String, ExpressibleByArgument, CaseIterable {
            case rsa2048, rsa3072, rsa4096, p256, p384
        }
        @Option(name: .long, help: "rsa2048, rsa3072, rsa4096, p256 or p384.")
        var type: KeyType
        @Option(name: .long, help: "A name for the key (shown by `signet key list`).")
        var label: String
        @Option(name: .long, help: "CKA_ID in hex, shared by the key pair and its certificate (default: 16 random bytes).")
        var id: String?
        @Option(name: .long, help: "The token's PKCS#11 URI; needed when more than one token is present.")
        var token: String?

        func run() throws {
            let keyID: [UInt8]
            if let id {
                guard let bytes = Hex.decode(id), !bytes.isEmpty, bytes.count <= 64 else {
                    throw CLIError(description: "--id must be 1 to 64 bytes in hex, for example 01 or a1b2c3.")
                }
                keyID = bytes
            } else {
                keyID = (0..<16).map { _ in UInt8.random(in: 0...255) }
            }
            let (wireType, bits, curve): (WireKeyType, UInt32, String) = switch type {
            case .rsa2048: (.rsa, 2048, "")
            case .rsa3072: (.rsa, 3072, "")
            case .rsa4096: (.rsa, 4096, "")
            case .p256: (.ec, 0, "P-256")
            case .p384: (.ec, 0, "P-384")
            }
            if wireType == .rsa { Console.error("Generating an RSA-\(bits) key on the token; this can take a while…") }
            guard case .keyPair(_, let privateURI, let spki) = try Agent.call(
                .generateKeyPair(token: token, keyType: wireType, bits: bits, curve: curve, id: keyID, label: label)) else {
                throw CLIError(description: "unexpected answer from the agent")
            }
            print("Generated \(type.rawValue) key \"\(Console.safe(label))\" (id \(Hex.encode(keyID))).")
            print("  \(Console.safe(privateURI))")
            print("Public key:")
            print(PEM.encode(spki, label: "PUBLIC KEY"), terminator: "")
            print("Next: signet csr --key \(Hex.encode(keyID)) --subject \"C=..,O=Your Org,CN=Your Name\" --email you@example.org")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list",
            abstract: "List private keys: URI, type, size, id, label and the certificate that belongs to each.",
            discussion: "Private keys are visible once the token is unlocked."
        )
        @Option(name: .long, help: "Only this token (PKCS#11 URI).")
        var token: String?
        @OptionGroup var output: OutputOptions

        struct Entry: Codable {
            var uri: String
            var type: String
            var bits: UInt32
            var id: String
            var label: String
            var usages: [String]
            var certificates: [String]
        }

        func run() throws {
            let client = try Agent.connect()
            let inventory = try Inventory.load(client: client, token: token)
            let entries = inventory.keys.map { key in
                Entry(uri: key.entry.uri, type: key.entry.keyType == .rsa ? "RSA" : "EC", bits: key.entry.bits, id: Hex.encode(key.entry.id),
                      label: key.entry.label, usages: key.entry.usages.names, certificates: key.certificates.map(\.subject))
            }
            if output.json { return try JSONOutput.print(entries) }
            if entries.isEmpty {
                print("No private keys are visible. Unlock the token (`signet unlock`), or generate one with `signet key generate`.")
            }
            for entry in entries {
                print("\(entry.type)-\(entry.bits)  \(Console.safe(entry.label))  id \(entry.id)  [\(entry.usages.joined(separator: ", "))]")
                print("  \(Console.safe(entry.uri))")
                if entry.certificates.isEmpty {
                    print("  certificate: none (make a request with `signet csr --key \(entry.id) …`)")
                } else {
                    for subject in entry.certificates { print("  certificate: \(Console.safe(subject))") }
                }
            }
        }
    }
}

/// `signet csr`.
struct CSRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csr",
        abstract: "Make a certificate signing request (PKCS#10) signed by a key on the token.",
        discussion: """
        The subject is written most significant first, as in deployment guides: \
        C=CA,ST=ON,O=Example Org,CN=8934282. Commas and other special characters in a value are \
        escaped as in RFC 4514 (O=Smith\\, Jones and Co). The signature is SHA-256 (ECDSA for EC keys). \
        --purpose asks for the key usages the certificate needs: mail (emailProtection; signing, and \
        decryption: keyEncipherment for RSA, keyAgreement for EC), login (clientAuth, for logging into \
        webmail and other TLS sites; with --upn, the UPN that Exchange and Active Directory map to an account), \
        or mail,login for one certificate that does both. A CA that copies requested extensions issues them \
        as asked. The token must be unlocked.
        """
    )
    @Option(name: .long, help: "The key: its PKCS#11 URI, its id in hex, or its label.")
    var key: String
    @Option(name: .long, help: "The subject, e.g. \"C=CA,ST=ON,O=Example Org,CN=8934282\".")
    var subject: String
    @Option(name: .long, help: "An email address for the subject alternative name (repeatable).")
    var email: [String] = []
    @Option(name: .long, help: "What the certificate is for: mail, login, or mail,login.")
    var purpose = "mail"
    @Option(name: .long, help: "A Microsoft user principal name (otherName UPN, user@domain) for login mapping (repeatable).")
    var upn: [String] = []
    @Option(name: .long, help: "A DNS name for the subject alternative name (repeatable).")
    var dns: [String] = []
    @Option(name: .long, help: "sha256, sha384 or sha512.")
    var digest = "sha256"
    @Option(name: [.customShort("o"), .long], help: "Write the request to this file (default: standard output).")
    var out: String?
    @Flag(name: .long, help: "Write DER instead of PEM.")
    var der = false

    func run() throws {
        let name: DistinguishedName
        do { name = try DistinguishedName(parsing: subject) } catch { throw CLIError(description: error.description) }
        let purposes: CertificateRequest.Purposes
        do throws(CertificateRequest.OptionError) {
            purposes = try CertificateRequest.checkedOptions(purpose: purpose, userPrincipalNames: upn, digest: digest)
        } catch { throw CLIError(description: error.description) }
        let client = try Agent.connect()
        let inventory = try Inventory.load(client: client)
        let entry = try inventory.privateKey(key)
        guard !entry.publicKeyInfo.isEmpty else {
            throw CLIError(description: "The token does not show the public half of \(entry.label); keep its public key object on the token.")
        }
        let agentKey = try AgentKey(client: client, uri: entry.uri, subjectPublicKeyInfo: entry.publicKeyInfo)
        let request: [UInt8]
        do {
            request = try CertificateRequest.make(subject: name, names: .init(emails: email, dnsNames: dns, userPrincipalNames: upn),
                                                  purposes: purposes, key: agentKey, digest: digest)
        } catch {
            throw CLIError(description: "Could not make the request: \(error)")
        }
        try writeOutput(der ? request : Array(CertificateRequest.pem(request).utf8), to: out)
        if let out { Console.error("Wrote the request for \(name) to \(out). Send it to your CA; install what comes back with `signet cert import`.") }
    }
}
