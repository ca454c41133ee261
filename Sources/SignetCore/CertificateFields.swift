/// The fields of a DER X.509 certificate that PKCS#11 attributes carry (`CKA_SUBJECT`, `CKA_ISSUER`,
/// `CKA_SERIAL_NUMBER`) and the key it certifies: a bounded parse of the outer structure only, for
/// the agent (storing a certificate) and the PKCS#11 module (answering its attributes). Anything
/// malformed is refused.
public struct CertificateFields: Sendable {
    public let subject: [UInt8]
    public let issuer: [UInt8]
    /// The DER INTEGER, tag and length included.
    public let serialNumber: [UInt8]
    /// The DER SubjectPublicKeyInfo.
    public let publicKeyInfo: [UInt8]

    /// Reads the fields from a DER certificate.
    /// - Throws: `DER.ParseError` when `der` is not one well-formed certificate (truncated, a tag out of place, trailing bytes).
    public init(der: [UInt8]) throws(DER.ParseError) {
        let outer = try DER.readTLV(der[...], tag: 0x30)
        guard outer.rest.isEmpty else { throw .trailingBytes }
        var tbs = try DER.readTLV(outer.contents, tag: 0x30).contents
        if tbs.first == 0xA0 { tbs = try DER.element(tbs).rest }  // [0] version
        func next(_ tag: UInt8, after bytes: ArraySlice<UInt8>) throws(DER.ParseError) -> (whole: ArraySlice<UInt8>, rest: ArraySlice<UInt8>) {
            let element = try DER.element(bytes)
            guard element.tag == tag else { throw .unexpectedTag(expected: tag, found: element.tag) }
            return (element.whole, element.rest)
        }
        let serial = try next(0x02, after: tbs)
        let algorithm = try next(0x30, after: serial.rest)
        let issuer = try next(0x30, after: algorithm.rest)
        let validity = try next(0x30, after: issuer.rest)
        let subject = try next(0x30, after: validity.rest)
        let key = try next(0x30, after: subject.rest)
        serialNumber = Array(serial.whole)
        self.issuer = Array(issuer.whole)
        self.subject = Array(subject.whole)
        publicKeyInfo = Array(key.whole)
    }
}
