import SignetCore
import SignetOpenSSL

/// Reads a certificate file the user named, bounded.
/// - Throws: `SignetError` when the file cannot be read or holds no certificate Signet reads.
public func readCertificateFile(_ path: String) throws(SignetError) -> CertificateFile.Contents {
    guard let bytes = FileIO.readBytes(path, limit: CertificateFile.maximumSize + 1) else {
        throw SignetError(.failure, "Cannot read \(path).")
    }
    do {
        return try CertificateFile.read(bytes)
    } catch {
        throw SignetError(.failure, "\(path): \(error.description)", cause: error)
    }
}
