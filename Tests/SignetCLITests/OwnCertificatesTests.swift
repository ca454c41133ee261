import FoundationEssentials
@testable import SignetCLI
import Testing

@Suite("The remembered own certificates (own.json)")
struct OwnCertificatesTests {
    @Test("Public keys are written as base64; the array of numbers Signet 0.2.0 wrote still reads and is marked for rewriting")
    func publicKeyForms() throws {
        let key: [UInt8] = [0x30, 0x82, 0x01, 0x22, 0xFF, 0x00, 0x2F]
        let written = try JSONEncoder().encode(OwnCertificates(entries: [.init(pem: "P", keyURI: "pkcs11:token=T;type=private", publicKeyInfo: key)]))
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains("\"publicKeyInfo\":\"MIIBIv8AL"))
        let reread = try JSONDecoder().decode(OwnCertificates.self, from: written)
        #expect(reread.entries.map(\.publicKeyInfo) == [key])
        #expect(reread.entries.map(\.readAsNumbers) == [false])

        let old = #"{"entries":[{"pem":"P","keyURI":"pkcs11:token=T;type=private","publicKeyInfo":[48,130,1,34,255,0,47]}]}"#
        let legacy = try JSONDecoder().decode(OwnCertificates.self, from: Data(old.utf8))
        #expect(legacy.entries.map(\.publicKeyInfo) == [key])
        #expect(legacy.entries.map(\.readAsNumbers) == [true])

        let broken = #"{"entries":[{"pem":"P","keyURI":"u","publicKeyInfo":"not base64!"}]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(OwnCertificates.self, from: Data(broken.utf8)) }
    }
}
