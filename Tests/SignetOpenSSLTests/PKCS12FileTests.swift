import COpenSSL
import Foundation
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL
import SignetTestSupport
import Testing

@Suite("Opening PKCS#12 files")
struct PKCS12FileTests {
    static let data = TestPaths.testData.appendingPathComponent("thunderbird-smime")

    func open(_ path: String, _ password: String) throws(PKCS12File.Failure) -> PKCS12File.Contents {
        let bytes = Array((try? Data(contentsOf: Self.data.appendingPathComponent(path))) ?? Data())
        return try PKCS12File.open(bytes, password: SecretBytes(copying: Array(password.utf8)))
    }

    @Test("Thunderbird's Bob.p12 (PBES2/AES) opens: an RSA key with all its components, the certificate and the CA")
    func modern() throws {
        let bob = try open("smime/Bob.p12", "nss")
        #expect(!bob.legacy)
        #expect(bob.encryption.contains("PBES2") && bob.encryption.contains("AES"))
        #expect(bob.certificate.subject.hasSuffix("CN=Bob"))
        #expect(bob.key.keyType == .rsa)
        #expect(bob.key.components.map(\.0) == [.modulus, .publicExponent, .privateExponent, .prime1, .prime2, .exponent1, .exponent2, .coefficient])
        #expect(bob.key.components.first?.1.count == 256)
        #expect(bob.chain.contains { $0.isAuthority })
    }

    @Test("OpenSSL's legacy Fran.p12 (3DES) and the P-384 Fran-ec.p12 open and say they are legacy")
    func legacy() throws {
        let fran = try open("smime-interop/Fran.p12", "nss")
        #expect(fran.legacy)
        #expect(fran.encryption.contains("TripleDES"))
        let ec = try open("smime-interop/Fran-ec.p12", "nss")
        #expect(ec.key.keyType == .ec)
        #expect(ec.key.components.map(\.0) == [.ecParameters, .ecPrivateValue, .ecPoint])
        #expect(ec.key.components[1].1.count == 48)
        #expect(ec.key.components[2].1.count == 97)
        // The legacy provider went into a context of its own: loading it into OpenSSL's global one races
        // with other threads' algorithm fetches (openssl/openssl#17633; seen here as a modern file's "wrong password").
        #expect(OSSL_PROVIDER_available(nil, "legacy") == 0)
    }

    @Test("A wrong password, garbage and truncation are refused with a reason")
    func refusals() throws {
        #expect(throws: PKCS12File.Failure.wrongPassword) { try open("smime/Bob.p12", "NSS") }
        #expect(throws: PKCS12File.Failure.wrongPassword) { try open("smime-interop/Fran.p12", "") }
        #expect(throws: PKCS12File.Failure.notPKCS12) { try open("smime/TestCA.pem", "nss") }
        let bytes = Array(try Data(contentsOf: Self.data.appendingPathComponent("smime/Bob.p12")))
        for length in stride(from: 0, to: bytes.count, by: 97) {
            #expect(throws: PKCS12File.Failure.self) { try PKCS12File.open(Array(bytes.prefix(length)), password: SecretBytes(copying: Array("nss".utf8))) }
        }
    }
}
