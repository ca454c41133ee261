import COpenSSL
import SignetCore

/// A CMS message read once and sorted by type, so a mail reader parses each layer a single time.
public enum CMSMessage {
    /// Largest message read into memory.
    public static let maximumSize = 64 << 20

    case signed(SignedMessage)
    case enveloped(EnvelopedMessage)
    /// CMS of another type (data, digested, compressed…), by OpenSSL's short name.
    case other(String)

    /// Whether `bytes` is the start of a CMS structure that ends early: DER/BER, or the base64 body of an
    /// `application/pkcs7-mime` message, whose encoding promises more than there is.
    public static func isTruncated(_ bytes: [UInt8]) -> Bool {
        let body: ByteSource
        if bytes.first == 0x30 {
            body = ArraySource(bytes)
        } else {
            let headers = MIMEHeaders(message: bytes)
            guard let type = headers.value("content-type"),
                  ["application/pkcs7-mime", "application/x-pkcs7-mime"].contains(MIMEHeaders.mainValue(type)) else { return false }
            // Declared S/MIME, but the headers never end or nothing follows them.
            guard let start = mimeBodyStart(bytes), start < bytes.count else { return true }
            let encoding = headers.value("content-transfer-encoding").map { MIMEHeaders.mainValue($0) }
            body = encoding == "base64" ? Base64DecodingSource(ArraySource(Array(bytes[start...]))) : ArraySource(Array(bytes[start...]))
        }
        do {
            _ = try BERReader(body).readElement(limit: maximumSize, what: "the message")
            return false
        } catch {
            return (error as? StreamError) == .truncated
        }
    }

    /// Where a MIME body starts: after the first empty line (LF or CRLF); nil when the headers never end.
    public static func mimeBodyStart(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while let newline = bytes[index...].firstIndex(of: 0x0A) {
            let next = newline + 1
            if next < bytes.count, bytes[next] == 0x0A { return next + 1 }
            if next + 1 < bytes.count, bytes[next] == 0x0D, bytes[next + 1] == 0x0A { return next + 2 }
            index = next
        }
        return nil
    }

    /// Reads an S/MIME message (MIME text), DER/BER CMS, or PEM CMS (`BEGIN CMS`, `BEGIN PKCS7`) and sorts it by content type.
    /// - Throws: `OpenSSLError` when it is too large or not CMS.
    public static func parse(_ bytes: [UInt8]) throws -> CMSMessage {
        let (cms, detached) = try readCMS(bytes)
        switch OBJ_obj2nid(CMS_get0_type(cms)) {
        case NID_pkcs7_signed: return .signed(SignedMessage(owning: cms, detachedContent: detached))
        case NID_pkcs7_enveloped, NID_id_smime_ct_authEnvelopedData: return .enveloped(EnvelopedMessage(owning: cms))
        case let type:
            CMS_ContentInfo_free(cms)
            return .other(OBJ_nid2sn(type).map { String(cString: $0) } ?? "unknown")
        }
    }
}

/// Parses S/MIME (with the first part of multipart/signed as detached content) or, failing that, DER/BER CMS,
/// or PEM (`-----BEGIN CMS-----`, or `-----BEGIN PKCS7-----` as `openssl smime -outform PEM` writes).
/// The caller owns the returned structure.
func readCMS(_ message: [UInt8]) throws -> (OpaquePointer, [UInt8]?) {
    guard message.count <= CMSMessage.maximumSize else { throw OpenSSLError("The message is larger than \(CMSMessage.maximumSize >> 20) MiB") }
    OpenSSLError.drain()
    var content: [UInt8]?
    let parsed: OpaquePointer? = try withMemoryBIO(message) { bio in
        var contentBIO: OpaquePointer?
        if let parsed = SMIME_read_CMS(bio, &contentBIO) {
            if let contentBIO {
                defer { BIO_free(contentBIO) }
                content = try collectBIO { out in
                    var chunk = [UInt8](repeating: 0, count: 64 << 10)
                    while true {
                        let got = chunk.withUnsafeMutableBytes { BIO_read(contentBIO, $0.baseAddress, Int32($0.count)) }
                        if got <= 0 { break }
                        _ = chunk.withUnsafeBytes { BIO_write(out, $0.baseAddress, got) }
                    }
                }
            }
            return parsed
        }
        OpenSSLError.drain()
        _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
        if message.first != 0x30, CMSMessage.isPEM(message) {
            // PEM_read_bio_CMS takes both labels (BEGIN CMS and BEGIN PKCS7).
            return PEM_read_bio_CMS(bio, nil, nil, nil)
        }
        return d2i_CMS_bio(bio, nil)
    }
    guard let parsed else { throw OpenSSLError("This is not an S/MIME or CMS message") }
    return (parsed, content)
}

extension CMSMessage {
    /// Whether `message` starts (after white space) with a PEM CMS or PKCS#7 label.
    public static func isPEM(_ message: [UInt8]) -> Bool {
        let head = String(decoding: message.prefix(64).drop(while: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }), as: UTF8.self)
        return head.hasPrefix("-----BEGIN CMS-----") || head.hasPrefix("-----BEGIN PKCS7-----")
    }
}
