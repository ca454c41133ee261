import Foundation
import SignetCore
import SignetOpenSSL
import SignetTestSupport
import Testing

/// Certificate files in every form CAs send, made by the real `openssl` tool (and NSS, for BER).
@Suite("Reading certificate files")
struct CertificateFileTests {
    /// A throw-away CA and a leaf, made by openssl.
    struct Issued {
        let peer: OpenSSLPeer
        let leaf: String
        let root: String
        init() throws {
            peer = try OpenSSLPeer()
            root = peer.path("root.pem")
            leaf = peer.path("leaf.pem")
            try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("root.key"), "-out", root,
                                        "-subj", "/C=CA/O=Test CA/CN=Root", "-days", "3"])
            try Run.checked("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", peer.path("leaf.key"),
                                        "-out", peer.path("leaf.csr"), "-subj", "/C=CA/ST=ON/O=Example Org/CN=8934282"])
            try Run.checked("openssl", ["x509", "-req", "-in", peer.path("leaf.csr"), "-CA", root, "-CAkey", peer.path("root.key"),
                                        "-CAcreateserial", "-days", "2", "-out", leaf])
        }
        func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
    }

    @Test("PEM with several certificates, DER, PKCS#7 in DER and PEM, and PKCS#7 under a CERTIFICATE label all give the certificates")
    func formats() throws {
        let issued = try Issued()
        let peer = issued.peer
        let bundle = try issued.bytes(issued.leaf) + issued.bytes(issued.root)
        let pem = try CertificateFile.read(bundle)
        #expect(pem.certificates.map(\.subject) == ["C=CA,ST=ON,O=Example Org,CN=8934282", "C=CA,O=Test CA,CN=Root"])

        try Run.checked("openssl", ["x509", "-in", issued.leaf, "-outform", "DER", "-out", peer.path("leaf.der")])
        let der = try CertificateFile.read(try issued.bytes(peer.path("leaf.der")))
        #expect(der.certificates.count == 1 && der.format == "DER certificate")

        try Run.checked("openssl", ["crl2pkcs7", "-nocrl", "-certfile", issued.leaf, "-certfile", issued.root, "-outform", "DER", "-out", peer.path("b.p7b")])
        let p7b = try CertificateFile.read(try issued.bytes(peer.path("b.p7b")))
        #expect(p7b.certificates.count == 2 && p7b.format.contains("PKCS#7"))

        try Run.checked("openssl", ["crl2pkcs7", "-nocrl", "-certfile", issued.leaf, "-out", peer.path("b.p7c")])
        let p7pem = try CertificateFile.read(try issued.bytes(peer.path("b.p7c")))
        #expect(p7pem.certificates.first?.der == der.certificates.first?.der)

        // The mislabelled case: a PKCS#7 bundle inside BEGIN CERTIFICATE.
        let mislabelled = PEM.encode(try issued.bytes(peer.path("b.p7b")), label: "CERTIFICATE")
        let read = try CertificateFile.read(Array(mislabelled.utf8))
        #expect(read.certificates.count == 2)
        #expect(read.format.contains("PKCS#7 bundle labelled CERTIFICATE"))
    }

    @Test("A BER (indefinite-length) PKCS#7 written by NSS gives its certificates")
    func berFromNSS() throws {
        // Thunderbird's opaque signed message: base64 of a BER SignedData carrying Alice's certificate.
        let message = try String(contentsOf: TestPaths.testData.appendingPathComponent("thunderbird-smime/smime/alice.sig.SHA256.opaque.eml"), encoding: .utf8)
        let body = message.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n").dropFirst().joined(separator: "\n")
        let der = try #require(Data(base64Encoded: body, options: .ignoreUnknownCharacters))
        #expect(der.count > 4 && der[der.startIndex + 1] == 0x80, "the fixture should be indefinite-length BER")
        let read = try CertificateFile.read(Array(der))
        #expect(read.certificates.contains { $0.subject.contains("CN=Alice") })
    }

    @Test("Garbage, truncation, an empty file, a key file and an oversized file are refused with a reason, never a crash")
    func refusals() throws {
        let issued = try Issued()
        try Run.checked("openssl", ["x509", "-in", issued.leaf, "-outform", "DER", "-out", issued.peer.path("leaf.der")])
        let der = try issued.bytes(issued.peer.path("leaf.der"))
        for length in stride(from: 0, to: der.count, by: 7) {
            #expect(throws: CertificateFile.Failure.self) { try CertificateFile.read(Array(der.prefix(length))) }
        }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let noise = (0..<Int.random(in: 1...600, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(throws: CertificateFile.Failure.self) { try CertificateFile.read(noise) }
        }
        let p12 = Array(try Data(contentsOf: TestPaths.testData.appendingPathComponent("thunderbird-smime/smime/Bob.p12")))
        #expect { try CertificateFile.read(p12) } throws: { "\($0)".contains("signet import") }
        let key = try issued.bytes(issued.peer.path("leaf.key"))
        #expect(throws: CertificateFile.Failure.self) { try CertificateFile.read(key) }
        #expect(throws: CertificateFile.Failure.self) { try CertificateFile.read([UInt8](repeating: 0x30, count: CertificateFile.maximumSize + 1)) }
    }

    @Test("Certificate fields: names, validity, usages, alternative names, CRL points, fingerprints, the AD mapping")
    func fields() throws {
        let peer = try OpenSSLPeer()
        let config = try peer.file("ext.cnf", text: """
            keyUsage=critical,digitalSignature,keyEncipherment
            extendedKeyUsage=emailProtection,clientAuth,1.3.6.1.4.1.311.20.2.2
            subjectAltName=email:Someone@Example.org,DNS:host.example,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:someone@corp.example
            crlDistributionPoints=URI:http://crl.example/ca.crl
            """)
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("k"), "-out", peer.path("c.pem"),
                                    "-subj", "/C=CA/O=Smith, Jones/CN=8934282", "-days", "5", "-addext", "basicConstraints=CA:FALSE",
                                    "-extensions", "v3", "-config", try peer.file("req.cnf", text: "[req]\ndistinguished_name=dn\n[dn]\n[v3]\n.include \(config)\n")])
        let certificate = try #require(try CertificateFile.read(try peer.read("c.pem")).certificates.first)
        #expect(certificate.subject == "C=CA,O=Smith\\, Jones,CN=8934282")
        #expect(certificate.label == "8934282")
        #expect(certificate.keyUsage == [.digitalSignature, .keyEncipherment])
        #expect(certificate.extendedKeyUsage == ["emailProtection", "clientAuth", "smartcardLogon"])
        #expect(certificate.alternativeNames == [.email("Someone@Example.org"), .dns("host.example"), .upn("someone@corp.example")])
        #expect(certificate.emails == ["someone@example.org"])
        #expect(certificate.crlDistributionPoints == ["http://crl.example/ca.crl"])
        #expect(certificate.activeDirectoryMapping == "X509:<I>C=CA,O=Smith\\, Jones,CN=8934282<S>C=CA,O=Smith\\, Jones,CN=8934282")
        #expect(certificate.validity() == .valid)
        #expect(certificate.validity(at: Date().addingTimeInterval(6 * 86400)) == .expired)
        #expect(certificate.validity(at: Date().addingTimeInterval(-86400)) == .notYetValid)
        let fingerprint = try Run.checked("openssl", ["x509", "-in", peer.path("c.pem"), "-noout", "-fingerprint", "-sha256"]).output
        #expect(fingerprint.replacingOccurrences(of: ":", with: "").uppercased().contains(certificate.sha256.uppercased()))
        #expect(certificate.keyDescription == "RSA-2048")
        #expect(!certificate.isAuthority)
    }
}
