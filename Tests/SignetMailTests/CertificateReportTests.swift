import Foundation
import SignetMail
import SignetOpenSSL
import SignetTestSupport
import Testing

/// `CertificateReport.purposes`, the "for:" line of `signet cert list`: certificates made by openssl with the
/// key usages and extended key usages a CA gives for mail, for login, for both, and for Windows logon.
@Suite("Certificate report")
struct CertificateReportTests {
    /// A self-issued leaf (not a CA) with `extensions` (openssl -addext lines).
    func certificate(_ extensions: [String]) throws -> Certificate {
        let directory = try TestPaths.temporaryDirectory("signet-report-cert")
        defer { try? FileManager.default.removeItem(at: directory) }
        let der = directory.path + "/cert.der"
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.path + "/key.pem", "-outform", "DER",
                                    "-out", der, "-subj", "/CN=Alice", "-days", "2", "-addext", "basicConstraints=CA:false"]
                        + extensions.flatMap { ["-addext", $0] })
        return try Certificate(der: Array(try Data(contentsOf: URL(fileURLWithPath: der))))
    }

    @Test("Mail and login, login only, mail signing only, and smart-card logon each name what they serve")
    func purposes() throws {
        let both = try certificate(["keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=emailProtection,clientAuth",
                                    "subjectAltName=email:alice@example.org"])
        #expect(CertificateReport.purposes(both) == ["signing", "encryption", "client login"])
        let login = try certificate(["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"])
        #expect(CertificateReport.purposes(login) == ["client login"])
        let signing = try certificate(["keyUsage=critical,digitalSignature", "extendedKeyUsage=emailProtection", "subjectAltName=email:alice@example.org"])
        #expect(CertificateReport.purposes(signing) == ["signing"])
        let logon = try certificate(["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth,1.3.6.1.4.1.311.20.2.2"])
        #expect(CertificateReport.purposes(logon) == ["client login", "Windows logon"])
    }
}
