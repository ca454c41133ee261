import COpenSSL
import CSignetCrypto
import FoundationEssentials
import SignetCore

/// A certificate revocation list, from a file or fetched (`SignetMail.CRLFetcher`).
public final class RevocationList {
    public static let maximumSize = 16 << 20
    let crl: OpaquePointer

    /// Reads a PEM or DER CRL.
    public init(bytes: [UInt8]) throws {
        guard bytes.count <= Self.maximumSize else { throw OpenSSLError("The CRL is larger than \(Self.maximumSize >> 20) MiB") }
        OpenSSLError.drain()
        let parsed: OpaquePointer? = try withMemoryBIO(bytes) { bio in
            if let crl = PEM_read_bio_X509_CRL(bio, nil, nil, nil) { return crl }
            OpenSSLError.drain()
            _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
            return d2i_X509_CRL_bio(bio, nil)
        }
        guard let parsed else { throw OpenSSLError("This is not a CRL (PEM or DER)") }
        crl = parsed
    }

    deinit { X509_CRL_free(crl) }

    /// The CRL's issuer, as Signet prints names.
    public var issuer: String { Certificate.nameText(X509_CRL_get_issuer(crl)) }
}

/// Builds and checks a certificate's path to a trust anchor at a given time (OpenSSL's X509_verify_cert).
public enum ChainVerifier {
    public enum Outcome: Equatable, Sendable {
        case trusted
        case untrusted(String)
        case expired(String)
        case notYetValid(String)
        case revoked(String)
        /// Revocation could not be checked (no CRL for an issuer, or a CRL out of date).
        case revocationUnknown(String)
    }

    /// Verifies `certificate` for S/MIME signing (or `purpose`) at `date`.
    /// Only `anchors` are trusted; `intermediates` only help build the path.
    /// With `crls`, every certificate in the path below the anchor is then checked against them as they stand
    /// now (`now`): a CRL is issued after the message was signed, so at the signing time it would not yet be valid.
    /// `checkRevocation` requires that check even with no CRLs (then revocation is unknown).
    public static func verify(_ certificate: Certificate, anchors: [Certificate], intermediates: [Certificate],
                              at date: Date, crls: [RevocationList] = [], checkRevocation: Bool = false, now: Date = Date(),
                              purpose: Int32 = X509_PURPOSE_SMIME_SIGN) -> (Outcome, [Certificate]) {
        let (outcome, path) = check(certificate, anchors: anchors, intermediates: intermediates, at: date, crls: nil, purpose: purpose)
        guard outcome == .trusted, checkRevocation || !crls.isEmpty else { return (outcome, path) }
        let (revocation, _) = check(certificate, anchors: anchors, intermediates: intermediates, at: now, crls: crls, purpose: purpose)
        return (revocation, path)
    }

    /// One X509_verify_cert run; with `crls` (even none), revocation is checked and validity periods are not
    /// (they were, at the signing time).
    private static func check(_ certificate: Certificate, anchors: [Certificate], intermediates: [Certificate],
                              at date: Date, crls: [RevocationList]?, purpose: Int32) -> (Outcome, [Certificate]) {
        OpenSSLError.drain()
        guard let store = X509_STORE_new() else { return (.untrusted("OpenSSL could not create a store"), []) }
        defer { X509_STORE_free(store) }
        for anchor in anchors { _ = X509_STORE_add_cert(store, anchor.x509) }
        for list in crls ?? [] { _ = X509_STORE_add_crl(store, list.crl) }
        let untrusted = CSignetCrypto_newCertificates()
        defer { CSignetCrypto_freeCertificates(untrusted) }
        for extra in intermediates { _ = CSignetCrypto_pushCertificate(untrusted, extra.retainedPointer()) }
        guard let context = X509_STORE_CTX_new() else { return (.untrusted("OpenSSL could not create a context"), []) }
        defer { X509_STORE_CTX_free(context) }
        guard X509_STORE_CTX_init(context, store, certificate.x509, untrusted) == 1 else { return (.untrusted(OpenSSLError("init").description), []) }
        let parameters = X509_STORE_CTX_get0_param(context)
        X509_VERIFY_PARAM_set_time(parameters, time_t(date.timeIntervalSince1970))
        if crls != nil {
            X509_VERIFY_PARAM_set_flags(parameters, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
            CSignetCrypto_ignoreCertificateExpiry(context)
        }
        _ = X509_STORE_CTX_set_purpose(context, purpose)
        let ok = X509_verify_cert(context) == 1
        var path: [Certificate] = []
        if let chain = X509_STORE_CTX_get0_chain(context) {
            for index in 0..<CSignetCrypto_certificateCount(chain) {
                if let entry = CSignetCrypto_certificateAt(chain, index) { path.append(Certificate(owning: X509_dup(entry))) }
            }
        }
        OpenSSLError.drain()
        if ok { return (.trusted, path) }
        let error = X509_STORE_CTX_get_error(context)
        let depth = X509_STORE_CTX_get_error_depth(context)
        let reason = X509_verify_cert_error_string(Int(error)).map { String(cString: $0) } ?? "error \(error)"
        let culprit = X509_STORE_CTX_get_current_cert(context).map { Certificate.nameText(X509_get_subject_name($0)) } ?? "?"
        let detail = "\(reason) (\(depth == 0 ? "signer" : "issuer") \(culprit))"
        switch error {
        case X509_V_ERR_CERT_HAS_EXPIRED: return (.expired(detail), path)
        case X509_V_ERR_CERT_NOT_YET_VALID: return (.notYetValid(detail), path)
        case X509_V_ERR_CERT_REVOKED: return (.revoked(detail), path)
        case X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CRL_NOT_YET_VALID,
             X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
            return (.revocationUnknown(detail), path)
        default: return (.untrusted(detail), path)
        }
    }
}
