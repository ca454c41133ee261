import COpenSSL

/// The OpenSSL this process runs with, for `signet version` and `signet report`.
public enum OpenSSLVersion {
    /// `OpenSSL_version(OPENSSL_VERSION)`, e.g. "OpenSSL 3.0.13 30 Jan 2024".
    public static var text: String { String(cString: COpenSSL_versionText()) }
}
