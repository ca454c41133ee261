import COpenSSL

/// A CMS message read once and sorted by type, so a mail reader parses each layer a single time.
public enum CMSMessage {
    /// Largest message read into memory.
    public static let maximumSize = 64 << 20

    case signed(SignedMessage)
    case enveloped(EnvelopedMessage)
    /// CMS of another type (data, digested, compressed…), by OpenSSL's short name.
    case other(String)

    /// Reads an S/MIME message (MIME text) or DER/BER CMS and sorts it by content type.
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

/// Parses S/MIME (with the first part of multipart/signed as detached content) or, failing that, DER/BER CMS.
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
        return d2i_CMS_bio(bio, nil)
    }
    guard let parsed else { throw OpenSSLError("This is not an S/MIME or CMS message") }
    return (parsed, content)
}
