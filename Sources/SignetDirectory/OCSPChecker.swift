import COpenSSL
import FoundationEssentials
import Glibc
import SignetCore
import SignetOpenSSL

/// Asks a certificate's CA whether it is still good (OCSP, RFC 6960) through OpenSSL's OCSP API, and falls back to the
/// CRL distribution point when the responder cannot say. The request carries a nonce; the response's signature, the
/// responder's authorisation (the CA itself, or a certificate the CA issued for OCSP signing) and its
/// thisUpdate/nextUpdate are checked. Answers are cached until their nextUpdate. Bounded like the CRL fetch: no
/// redirects, no loopback or link-local responder unless allowed, `eachSeconds` and `maximumResponse` per request,
/// at most `maximumRequests` requests and `totalSeconds` for one command.
public final class RevocationChecker {
    /// What was found.
    public enum Status: Equatable, Sendable {
        /// Good, and by whom ("OCSP http://...", or "CRL http://...").
        case good(String)
        /// Revoked: the reason, the time, and by whom.
        case revoked(reason: String, time: Date, by: String)
        /// No answer that says: why.
        case unknown(String)
    }

    public static let maximumResponse = 1 << 20
    public static let maximumRequests = 8
    public static let totalSeconds = 20.0
    public static let eachSeconds = 10.0

    public let allowLocal: Bool
    private let cacheDirectory: String
    private let trust: TrustStore
    private let each: Double
    private var requests = 0
    private var deadline: Double?

    /// - Parameters:
    ///   - allowLocal: ask responders on loopback and link-local addresses too (`ocsp-fetch-local = yes`).
    public init(allowLocal: Bool, trust: TrustStore = TrustStore(), cacheDirectory: String? = nil, eachSeconds: Double = RevocationChecker.eachSeconds) {
        self.allowLocal = allowLocal
        self.trust = trust
        self.each = eachSeconds
        self.cacheDirectory = cacheDirectory ?? (DirectoryCache().directory.split(separator: "/").dropLast().joined(separator: "/").prefixed("/") + "/ocsp")
    }

    /// The OCSP responder URLs in `certificate`'s Authority Information Access.
    public static func responders(_ certificate: Certificate) -> [String] {
        guard let x509 = X509Handle(certificate), let list = X509_get1_ocsp(x509.pointer) else { return [] }
        defer { X509_email_free(list) }
        var urls: [String] = []
        let stack = list
        for index in 0..<OPENSSL_sk_num(stack) {
            if let value = OPENSSL_sk_value(stack, index) { urls.append(String(cString: value.assumingMemoryBound(to: CChar.self))) }
        }
        return urls
    }

    /// The status of `certificate`, whose path (itself first, the anchor last) is `path`: OCSP first, then the CRL.
    public func check(_ certificate: Certificate, path: [Certificate], now: Date = Date()) -> Status {
        guard path.count >= 2 else { return .unknown("its issuer is not known") }
        let issuer = path[1]
        var notes: [String] = []
        for url in Self.responders(certificate) {
            switch ocsp(certificate, issuer: issuer, path: path, url: url, now: now) {
            case .good(let by): return .good(by)
            case .revoked(let reason, let time, let by): return .revoked(reason: reason, time: time, by: by)
            case .unknown(let why): notes.append(why)
            }
        }
        for url in certificate.crlDistributionPoints {
            switch crl(certificate, path: path, url: url, now: now) {
            case .good(let by): return .good(by + (notes.isEmpty ? "" : " (OCSP: \(notes.joined(separator: "; ")))"))
            case .revoked(let reason, let time, let by): return .revoked(reason: reason, time: time, by: by)
            case .unknown(let why): notes.append(why)
            }
        }
        return .unknown(notes.isEmpty ? "the certificate names no OCSP responder and no CRL" : notes.joined(separator: "; "))
    }

    /// One HTTP GET within this checker's bounds.
    private func fetch(_ url: String, accept what: String) throws(HTTPGet.Failure) -> [UInt8] {
        guard requests < Self.maximumRequests else { throw HTTPGet.Failure("not asked: Signet makes at most \(Self.maximumRequests) revocation requests per command") }
        let now = MonotonicClock.seconds()
        let end = deadline ?? now + Self.totalSeconds
        deadline = end
        guard now < end else { throw HTTPGet.Failure("not asked: the \(DurationText.words(Self.totalSeconds)) for revocation checks are spent") }
        requests += 1
        do {
            return try HTTPGet.fetch(url, allowLocal: allowLocal, deadline: min(end, now + each), limit: Self.maximumResponse)
        } catch {
            if error.description.contains("crl-fetch-local") {
                throw HTTPGet.Failure("\(url) is on a local address; set ocsp-fetch-local = yes to allow it")
            }
            throw error
        }
    }

    // MARK: OCSP.

    private func cachePath(_ certificate: Certificate) -> String { cacheDirectory + "/" + certificate.sha256.lowercased() + ".der" }

    private func ocsp(_ certificate: Certificate, issuer: Certificate, path: [Certificate], url: String, now: Date) -> Status {
        let by = "OCSP \(url)"
        guard let subject = X509Handle(certificate), let issuerHandle = X509Handle(issuer) else { return .unknown("\(by): OpenSSL could not read the certificates") }
        // A cached response, checked again as a fresh one is (but for the nonce), while before its nextUpdate.
        if let cached = FileIO.readBytes(cachePath(certificate), limit: Self.maximumResponse),
           case .answer(let status, _) = evaluate(cached, request: nil, subject: subject, issuer: issuerHandle, path: path, by: by + " (cached)", now: now) {
            return status
        }
        guard let id = OCSP_cert_to_id(nil, subject.pointer, issuerHandle.pointer), let request = OCSP_REQUEST_new() else {
            return .unknown("\(by): OpenSSL could not make a request")
        }
        defer { OCSP_REQUEST_free(request) }
        guard OCSP_request_add0_id(request, id) != nil else { OCSP_CERTID_free(id); return .unknown("\(by): OpenSSL could not make a request") }
        guard OCSP_request_add1_nonce(request, nil, -1) == 1 else { return .unknown("\(by): OpenSSL could not add a nonce") }
        var encoded: UnsafeMutablePointer<UInt8>?
        let length = i2d_OCSP_REQUEST(request, &encoded)
        guard length > 0, let encoded else { return .unknown("\(by): OpenSSL could not encode the request") }
        let der = Array(UnsafeBufferPointer(start: encoded, count: Int(length)))
        COpenSSL_free(encoded)
        // RFC 6960 appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER request}.
        let encodedRequest = base64(der).map { c -> String in c == "+" ? "%2B" : c == "/" ? "%2F" : c == "=" ? "%3D" : String(c) }.joined()
        let body: [UInt8]
        do { body = try fetch((url.hasSuffix("/") ? url : url + "/") + encodedRequest, accept: "ocsp") } catch {
            return .unknown("\(by): \(error)")
        }
        switch evaluate(body, request: request, subject: subject, issuer: issuerHandle, path: path, by: by, now: now) {
        case .answer(let status, let cacheable):
            if cacheable, FileIO.makeDirectories(cacheDirectory, mode: 0o700) { _ = FileIO.writeAtomically(cachePath(certificate), bytes: body, mode: 0o600) }
            return status
        case .refused(let why):
            return .unknown("\(by): \(why)")
        }
    }

    private enum Evaluation {
        case answer(Status, cacheable: Bool)
        case refused(String)
    }

    /// Checks a DER OCSPResponse for `subject`: status, nonce (when `request` is given), signature and responder
    /// authorisation against the trust store, thisUpdate/nextUpdate.
    private func evaluate(_ body: [UInt8], request: OpaquePointer?, subject: X509Handle, issuer: X509Handle, path: [Certificate],
                          by: String, now: Date) -> Evaluation {
        OpenSSLError.drain()
        defer { OpenSSLError.drain() }
        let response: OpaquePointer? = body.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_OCSP_RESPONSE(nil, &cursor, buffer.count)
        }
        guard let response else { return .refused("the answer is not an OCSP response") }
        defer { OCSP_RESPONSE_free(response) }
        let status = OCSP_response_status(response)
        guard status == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            return .refused("the responder answered \(String(cString: OCSP_response_status_str(Int(status))))")
        }
        guard let basic = OCSP_response_get1_basic(response) else { return .refused("the response has no basic response") }
        defer { OCSP_BASICRESP_free(basic) }
        if let request, OCSP_check_nonce(request, basic) == 0 {
            return .refused("the response's nonce is not the request's (a replayed answer?)")
        }
        // Signature and responder authorisation: signed by the CA, or by a responder certificate it issued for OCSP
        // signing, chaining to a root in Signet's trust store.
        guard let store = X509_STORE_new() else { return .refused("OpenSSL could not make a store") }
        defer { X509_STORE_free(store) }
        let stored = trust.entries().map(\.certificate)
        var held: [X509Handle] = []
        for anchor in stored.filter(\.isSelfSigned) + path.suffix(1) {
            if let handle = X509Handle(anchor) { held.append(handle); X509_STORE_add_cert(store, handle.pointer) }
        }
        guard let extra = OPENSSL_sk_new_null() else { return .refused("OpenSSL could not make a stack") }
        defer { OPENSSL_sk_free(extra) }
        for member in path.dropFirst().dropLast() + stored.filter({ !$0.isSelfSigned }) {
            if let handle = X509Handle(member) { held.append(handle); OPENSSL_sk_push(extra, UnsafeRawPointer(handle.pointer)) }
        }
        guard OCSP_basic_verify(basic, extra, store, 0) == 1 else {
            return .refused("the response's signature or its signer does not check (\(OpenSSLError("").description.trimmingSpaces())); "
                            + "it must be signed by the CA or by a responder certificate the CA issued for OCSP signing")
        }
        guard let id = OCSP_cert_to_id(nil, subject.pointer, issuer.pointer) else { return .refused("OpenSSL could not make a certificate id") }
        defer { OCSP_CERTID_free(id) }
        var certStatus: Int32 = -1, reason: Int32 = -1
        var revoked: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?, thisUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?,
            nextUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard OCSP_resp_find_status(basic, id, &certStatus, &reason, &revoked, &thisUpdate, &nextUpdate) == 1 else {
            return .refused("the response says nothing about this certificate")
        }
        guard OCSP_check_validity(thisUpdate, nextUpdate, 300, -1) == 1, let thisUpdate,
              time(of: thisUpdate).timeIntervalSince(now) <= 300, nextUpdate.map({ time(of: $0) > now.addingTimeInterval(-300) }) ?? true else {
            return .refused("the response is out of date or not yet valid (thisUpdate/nextUpdate)")
        }
        let cacheable = nextUpdate.map { time(of: $0) > now } ?? false
        switch certStatus {
        case V_OCSP_CERTSTATUS_GOOD:
            return .answer(.good(by), cacheable: cacheable)
        case V_OCSP_CERTSTATUS_REVOKED:
            let why = reason >= 0 ? String(cString: OCSP_crl_reason_str(Int(reason))) : "no reason given"
            return .answer(.revoked(reason: why, time: revoked.map(time(of:)) ?? now, by: by), cacheable: cacheable)
        default:
            return .answer(.unknown("\(by): the responder does not know this certificate"), cacheable: false)
        }
    }

    private func time(of asn1: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>) -> Date {
        var tm = tm()
        guard ASN1_TIME_to_tm(asn1, &tm) == 1 else { return Date(timeIntervalSince1970: 0) }
        return Date(timeIntervalSince1970: Double(timegm(&tm)))
    }

    // MARK: CRL fallback.

    private func crl(_ certificate: Certificate, path: [Certificate], url: String, now: Date) -> Status {
        let by = "CRL \(url)"
        let list: RevocationList
        do { list = try RevocationList(bytes: try fetch(url, accept: "crl")) } catch { return .unknown("\(by): \(error)") }
        let stored = trust.entries().map(\.certificate)
        let (outcome, _) = ChainVerifier.verify(certificate, anchors: stored.filter(\.isSelfSigned) + path.suffix(1),
                                                intermediates: Array(path.dropFirst().dropLast()), at: now, crls: [list], checkRevocation: true,
                                                now: now, purpose: X509_PURPOSE_ANY)
        switch outcome {
        case .trusted: return .good(by)
        case .revoked(let detail): return .revoked(reason: detail, time: now, by: by)
        case .revocationUnknown(let detail), .untrusted(let detail), .expired(let detail), .notYetValid(let detail): return .unknown("\(by): \(detail)")
        }
    }

    private func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var out = ""
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)]) + [0, 0]
            let n = UInt32(chunk[0]) << 16 | UInt32(chunk[1]) << 8 | UInt32(chunk[2])
            let count = min(3, bytes.count - index)
            for position in 0..<4 { out.append(position <= count ? table[Int(n >> UInt32(18 - 6 * position) & 63)] : "=") }
            index += 3
        }
        return out
    }
}

/// An OpenSSL X509 of a `Certificate`, parsed again from its DER (this target sees only the public API).
final class X509Handle {
    let pointer: OpaquePointer
    init?(_ certificate: Certificate) {
        let der = certificate.der
        guard let parsed: OpaquePointer = der.withUnsafeBufferPointer({ buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_X509(nil, &cursor, buffer.count)
        }) else { return nil }
        pointer = parsed
    }
    deinit { X509_free(pointer) }
}

extension String {
    fileprivate func prefixed(_ prefix: String) -> String { hasPrefix(prefix) ? self : prefix + self }
}
