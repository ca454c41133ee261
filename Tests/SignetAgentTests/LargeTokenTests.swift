import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Testing

/// A token holding more objects than one frame can list (issue 19 #10): about 220 certificates filled the
/// 64 KiB frame, after which `keys`, `cert list`, `sign` and `cert delete` all failed and the token could not
/// even be cleaned up. Listings now come a page at a time.
@Suite("A token with 1,000 certificates", .serialized)
struct LargeTokenTests {
    @Test("keys, cert list, sign and cert delete work on a token holding 1,000 certificates; each page fits a frame")
    func thousandCertificates() throws {
        let setup = try UnlockedToken("Crowded")
        let peer = try OpenSSLPeer()
        // Alice's own certificate for the RSA key, so that `signet sign` has a signer among the crowd.
        _ = try peer.file("rsa.pub", text: setup.rsa.publicPEM)
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("ca.key"), "-out", peer.path("ca.pem"),
                                    "-subj", "/CN=Crowd CA", "-days", "30"])
        try Run.checked("openssl", ["x509", "-new", "-force_pubkey", peer.path("rsa.pub"), "-subj", "/CN=Alice Crowded", "-CA", peer.path("ca.pem"),
                                    "-CAkey", peer.path("ca.key"), "-days", "30", "-outform", "DER", "-out", peer.path("alice.der"),
                                    "-extfile", try peer.file("ext", text: "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:alice@crowded.example\n")])
        guard case .stored = try setup.client.call(.storeCertificate(token: setup.token, der: try peer.read("alice.der"), id: [1], label: "rsa")) else {
            throw TestFailure("Alice's certificate was not stored")
        }
        // The crowd: the CA's certificate 1,000 times, each its own object.
        try Run.checked("openssl", ["x509", "-in", peer.path("ca.pem"), "-outform", "DER", "-out", peer.path("ca.der")])
        let crowd = try peer.read("ca.der")
        for index in 0..<1000 {
            let id: [UInt8] = [0x80, UInt8(index >> 8), UInt8(index & 0xFF)]
            guard case .stored = try setup.client.call(.storeCertificate(token: setup.token, der: crowd, id: id, label: "crowd-\(index)")) else {
                throw TestFailure("certificate \(index) was not stored")
            }
        }

        // The pages: every object once, each answer within a frame, certificates' DER included.
        var seen: [String] = [], start: UInt32 = 0, pages = 0
        while true {
            let request = AgentRequest.listObjectPage(token: setup.token, start: start, certificateValues: true)
            guard case .objectPage(let page) = try setup.client.call(request) else { throw TestFailure("no page") }
            pages += 1
            #expect(AgentFrame.encode(AgentResponse.objectPage(page), id: 1).count - 4 <= AgentProtocol.maximumFrame)
            for (entry, value) in zip(page.objects, page.values) where entry.kind == .certificate {
                #expect(value == crowd || entry.label == "rsa", "\(entry.label): \(value.count) bytes")
            }
            seen += page.objects.map(\.uri)
            guard let next = page.next else { break }
            start = next
        }
        #expect(Set(seen).count == seen.count)
        #expect(seen.count == 1001 + 4, "\(seen.count) objects")  // 1,001 certificates, two key pairs
        #expect(pages > 1)

        let keys = try setup.agent.signet(["keys", "--json"])
        #expect(keys.status == 0, "\(keys.errors)")
        #expect(keys.output.components(separatedBy: "\"certificate\"").count - 1 == 1001)
        let list = try setup.agent.signet(["cert", "list", "--json"])
        #expect(list.status == 0, "\(list.errors)")
        #expect(list.output.contains("CN=Alice Crowded"))

        let message = try peer.file("message.txt", text: "Content-Type: text/plain\r\n\r\nFrom a crowded token.\r\n")
        let signed = try setup.agent.signet(["sign", "--from", "alice@crowded.example", "--in", message, "-o", peer.path("signed.eml")])
        #expect(signed.status == 0, "\(signed.errors)")
        let verified = try Run.command("openssl", ["smime", "-verify", "-in", peer.path("signed.eml"), "-CAfile", peer.path("ca.pem"),
                                                   "-purpose", "any", "-out", "/dev/null"])
        #expect(verified.status == 0, "openssl: \(verified.errors)")

        let crowdID = try Run.checked("openssl", ["x509", "-in", peer.path("ca.pem"), "-noout", "-fingerprint", "-sha256"]).output
            .split(separator: "=").last.map { $0.filter(\.isHexDigit).prefix(16) }.map(String.init) ?? ""
        let deleted = try setup.agent.signet(["cert", "delete", crowdID, "--yes"])
        #expect(deleted.status == 0, "\(deleted.errors)")
        let after = try setup.agent.signet(["keys", "--json"])
        #expect(after.output.components(separatedBy: "\"certificate\"").count - 1 == 1000)
    }
}
