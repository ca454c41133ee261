// Certificate files as `signet cert import`, `trust add` and `verify --trust` read them:
// PEM, DER, BER and PKCS#7 bundles (CertificateFile.read), then what Signet prints of each.
import FuzzDriver
import SignetOpenSSL

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCertificateFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = PEMBlocks.parse(String(decoding: bytes, as: UTF8.self))
    guard let contents = try? CertificateFile.read(bytes) else { return 0 }
    for certificate in contents.certificates {
        _ = (certificate.subject, certificate.issuer, certificate.serial, certificate.label, certificate.keyDescription)
        _ = (certificate.notBefore, certificate.notAfter, certificate.validity(), certificate.sha256, certificate.keyIdentifier)
        _ = (certificate.subjectKeyIdentifier, certificate.keyUsage, certificate.extendedKeyUsage, certificate.isAuthority)
        _ = (certificate.isSelfSigned, certificate.alternativeNames, certificate.crlDistributionPoints, certificate.emails)
        _ = (certificate.userPrincipalNames, certificate.subjectPublicKeyInfo, certificate.isIssued(by: certificate))
        _ = try? Certificate(der: certificate.der)
        _ = certificate.pem
    }
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzCertificateFile) }
}
