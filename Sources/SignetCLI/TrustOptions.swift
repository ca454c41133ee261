import ArgumentParser
import SignetCore
import SignetMail

/// Options that decide whether a signer is trusted (shared by `verify` and `decrypt`).
struct TrustOptions: ParsableArguments {
    @Option(name: .long, help: "Also trust the CA certificates in this file (repeatable).")
    var trust: [String] = []
    @Option(name: .long, help: "Check the signer at this time (2026-01-27 or 2026-01-27T10:00:00Z) instead of the message's signing time.")
    var at: String?
    @Option(name: .long, help: "Check the signer's certificate against this CRL file (PEM or DER; repeatable).")
    var crl: [String] = []
    @Flag(name: .customLong("fetch-crl"), help: "Fetch the CRLs named in the CRL distribution points of a signer trusted by its path (http://, no redirects, at most 4 per message within 20 s; loopback and link-local addresses only with crl-fetch-local = yes).")
    var fetchCRL = false
    @Flag(name: .customLong("allow-sha1"), help: "Accept signatures made with SHA-1 (refused by default: SHA-1 is broken).")
    var allowSHA1 = false
    @Flag(name: .long, help: "Check no signer's revocation over the network (no OCSP); the report says so.")
    var offline = false
}

extension TrustOptions {
    /// The options as the mail layer takes them.
    var policy: TrustPolicy {
        var policy = TrustPolicy()
        policy.trust = trust
        policy.at = at
        policy.crl = crl
        policy.fetchCRL = fetchCRL
        policy.fetchCRLFromLocal = fetchCRL && SignetConfig.load().value("crl-fetch-local") == "yes"
        policy.allowSHA1 = allowSHA1
        return policy
    }
}

extension MessageOpener {
    /// An opener for a command: a locked token's access code is asked for on the terminal or read from `codeFD`.
    static func forCommand(trust: TrustOptions, codeFD: Int32?, topLevel message: [UInt8]) throws -> MessageOpener {
        let opener = try MessageOpener(options: trust.policy, topLevel: message)
        opener.unlocker = { client, uri in Agent.unlocker(client: client, keyURI: uri, codeFD: codeFD) }
        opener.revocationCheck = try Revocation.signerCheck(offline: trust.offline)
        return opener
    }
}
