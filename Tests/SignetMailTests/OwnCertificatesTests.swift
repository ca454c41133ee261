import Foundation
import Glibc
@testable import SignetMail
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL
import SignetTestSupport
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

@Suite("Remembering own certificates")
struct OwnCertificatesRememberTests {
    @Test("A certificate is remembered once; own.index lets later runs skip own.json, and without it own.json is read again")
    func rememberAndIndex() throws {
        let directory = "/tmp/signet-own-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        let pem = try String(contentsOfFile: TestPaths.testData.appendingPathComponent("thunderbird-smime/smime/TestCA.pem").path, encoding: .utf8)
        let bob = try #require(try CertificateFile.read(Array(pem.utf8)).certificates.first)
        let spki = bob.subjectPublicKeyInfo
        let key = ObjectEntry(uri: "pkcs11:token=T;id=%01;type=private", kind: .privateKey, label: "Bob", id: [1], keyType: nil, bits: 2048,
                              usages: [.sign, .decrypt], publicKeyInfo: spki)
        let certificateEntry = ObjectEntry(uri: "pkcs11:token=T;id=%01;type=cert", kind: .certificate, label: "Bob", id: [1], keyType: nil, bits: 0, usages: [])
        let inventory = Inventory(objects: [key, certificateEntry], keys: [],
                                  certificates: [.init(entry: certificateEntry, certificate: bob, publicKeyInfo: spki, privateKey: key, publicKey: nil)])

        OwnCertificates.remember(inventory, in: directory)
        #expect(OwnCertificates.load(from: directory).entries.map(\.keyURI) == ["pkcs11:token=T;id=%01;type=private"])
        #expect(FileIO.readText(directory + "/own.index", limit: 4096) == bob.sha256 + "\n")

        // With the index naming Bob, own.json is not read again (its emptied contents stay empty) ...
        #expect(FileIO.writeAtomically(directory + "/own.json", text: #"{"entries":[]}"#))
        OwnCertificates.remember(inventory, in: directory)
        #expect(OwnCertificates.load(from: directory).entries.isEmpty)
        // ... and without the index it is, and Bob is added back.
        unlink(directory + "/own.index")
        OwnCertificates.remember(inventory, in: directory)
        #expect(OwnCertificates.load(from: directory).entries.count == 1)
        #expect(FileIO.exists(directory + "/own.index"))
    }
}
