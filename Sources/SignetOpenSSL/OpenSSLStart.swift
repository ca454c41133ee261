import COpenSSL

/// Start-up of OpenSSL in a short-lived process (the `signet` command).
public enum OpenSSLStart {
    /// Initialises libcrypto without an exit handler: `OPENSSL_cleanup` at exit frees every table
    /// OpenSSL built (names, providers, error texts) only for the process to end a moment later.
    /// Must run before any other OpenSSL call; the configuration file is still read as usual.
    /// (The error texts stay loaded at start: once OpenSSL is told not to load them, it never does.)
    public static func shortLivedProcess() {
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_LOAD_CONFIG), nil)
    }
}
