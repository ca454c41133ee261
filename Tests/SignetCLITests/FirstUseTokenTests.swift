import Foundation
import SignetTestSupport
import Testing

/// What new users ran into with a software token and the real agent: Bob's certificate and key
/// from Thunderbird's corpus (`signet import Bob.p12`), and certificates made with OpenSSL.
@Suite("First use with a token", .serialized)
final class FirstUseTokenTests {
    let agent: AgentFixture
    let peer: OpenSSLPeer
    static let code = "first-1234"
    static let smime = TestPaths.testData.appendingPathComponent("thunderbird-smime/smime")
    static let message = "Content-Type: text/plain\n\nNote to self.\n"

    init() throws {
        agent = try AgentFixture()
        peer = try OpenSSLPeer()
        _ = try peer.file("message.txt", text: Self.message)
    }

    deinit { _ = try? agent.signet(["agent", "stop"]) }

    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) throws -> Run.Result {
        let result = try agent.signet(arguments, stdin: stdin)
        guard result.status == 0 else { throw TestFailure("signet \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)") }
        return result
    }

    /// A token with Bob's key and certificate, unlocked; returns what `signet import` printed.
    @discardableResult
    func tokenWithBob() throws -> Run.Result {
        try agent.makeToken("First", code: Self.code)
        let imported = try run(["import", Self.smime.appendingPathComponent("Bob.p12").path, "--password-fd", "0", "--code-fd", "0"],
                               stdin: "nss\n\(Self.code)\n")
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        return imported
    }

    @Test("encrypt --to FILE that does not exist says the file does not exist and names it")
    func missingRecipientFile() throws {
        try tokenWithBob()
        let result = try agent.signet(["encrypt", "--to", "bob.pem", "--in", peer.path("message.txt")])
        #expect(result.status == 1)
        #expect(result.errors.contains("The certificate file bob.pem does not exist."), "\(result.errors)")
        let path = try agent.signet(["encrypt", "--to", peer.path("nobody"), "--in", peer.path("message.txt")])
        #expect(path.errors.contains("The certificate file \(peer.path("nobody")) does not exist."), "\(path.errors)")
        // An address still means an address.
        let address = try agent.signet(["encrypt", "--to", "carol@example.org", "--in", peer.path("message.txt")])
        #expect(address.errors.contains("No certificate for carol@example.org is known."), "\(address.errors)")
    }

    @Test("encrypt without --to encrypts to your own certificate alone (and you can decrypt it); with no certificate of your own it refuses and says what to do")
    func encryptToSelf() throws {
        let refused = try agent.signet(["encrypt", "--in", peer.path("message.txt")])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("No recipient was named and you have no encryption certificate of your own"), "\(refused.errors)")
        #expect(refused.errors.contains("--to"))

        try tokenWithBob()
        let out = peer.path("self.eml")
        let encrypted = try agent.signet(["encrypt", "--in", peer.path("message.txt"), "-o", out])
        #expect(encrypted.status == 0, "\(encrypted.errors)")
        #expect(encrypted.errors.contains("to Bob"), "\(encrypted.errors)")
        let decrypted = try run(["decrypt", "--in", out])
        #expect(decrypted.output.contains("Note to self."))
    }
}
