import SignetOpenSSL

/// What `signet cert list` and `cert show` say of an installed certificate (printed, or as JSON): its fields, what it
/// serves, whether its key is on the token, and which defaults it is.
public struct CertificateReport: Codable {
    public var id: String
    public var subject: String
    public var issuer: String
    public var serial: String
    public var notBefore: String
    public var notAfter: String
    public var validity: String
    public var keyUsage: [String]?
    public var extendedKeyUsage: [String]?
    public var purposes: [String]
    public var keyPresent: Bool
    public var keyURI: String?
    public var uri: String
    public var defaults: [String]
    public var sha256: String?
    public var sha1: String?
    public var emails: [String]?
    public var alternativeNames: [String]?
    public var crlDistributionPoints: [String]?
    public var activeDirectoryMapping: String?
    public var userPrincipalNames: [String]?
    public var key: String

    public init(_ installed: Inventory.Installed, defaults: [String], full: Bool = false) {
        let certificate = installed.certificate
        id = installed.id
        subject = certificate.subject
        issuer = certificate.issuer
        serial = certificate.serial
        notBefore = Dates.iso(certificate.notBefore)
        notAfter = Dates.iso(certificate.notAfter)
        validity = certificate.validity().rawValue
        keyUsage = certificate.keyUsage?.names
        extendedKeyUsage = certificate.extendedKeyUsage
        purposes = Self.purposes(certificate)
        keyPresent = installed.privateKey != nil || installed.publicKey != nil
        keyURI = installed.privateKey?.uri
        uri = installed.entry.uri
        self.defaults = defaults
        key = certificate.keyDescription
        if full {
            sha256 = certificate.sha256
            sha1 = certificate.sha1
            emails = certificate.emails
            alternativeNames = certificate.alternativeNames.map {
                switch $0 {
                case .email(let value): "email:\(value)"
                case .dns(let value): "DNS:\(value)"
                case .upn(let value): "UPN:\(value)"
                case .uri(let value): "URI:\(value)"
                }
            }
            crlDistributionPoints = certificate.crlDistributionPoints
            activeDirectoryMapping = certificate.activeDirectoryMapping
            userPrincipalNames = certificate.userPrincipalNames
        }
    }

    /// What `certificate` serves, in words: "signing", "encryption" (as `CertificateChoice` picks them, at any time
    /// of its validity), "client login" (TLS client authentication), "Windows logon" (smart-card logon).
    public static func purposes(_ certificate: Certificate) -> [String] {
        var purposes: [String] = []
        if CertificateChoice.fits(certificate, .signing, at: certificate.notBefore) { purposes.append("signing") }
        if CertificateChoice.fits(certificate, .encryption, at: certificate.notBefore) { purposes.append("encryption") }
        if CertificateChoice.servesClientLogin(certificate) { purposes.append("client login") }
        if let eku = certificate.extendedKeyUsage, eku.contains("smartcardLogon") { purposes.append("Windows logon") }
        return purposes
    }
}
