import CLDAP
import Glibc
import SignetCore

/// One `directory = ldap[s]://host[:port]/BASE` entry of the configuration.
public struct DirectoryServer: Sendable, Equatable {
    /// The URI as written.
    public var uri: String
    /// `ldap://host:port` or `ldaps://host:port`: what libldap connects to.
    public var connectionURI: String
    /// The host as written (a GSSAPI bind asks for the ticket of ldap/HOST).
    public var host: String
    /// The search base (and the subtree `cert publish` looks in for your entry).
    public var base: String
    public var isLDAPS: Bool

    /// Parses `uri` with libldap's own URL parser (RFC 4516).
    /// - Returns: nil when it is not an `ldap://` or `ldaps://` URL with a host and a base DN.
    public init?(_ uri: String) {
        var parsed: UnsafeMutablePointer<LDAPURLDesc>?
        guard ldap_url_parse(uri, &parsed) == LDAP_URL_SUCCESS, let url = parsed?.pointee else { return nil }
        defer { ldap_free_urldesc(parsed) }
        let scheme = url.lud_scheme.map { String(cString: $0).lowercased() } ?? ""
        let host = url.lud_host.map { String(cString: $0) } ?? ""
        let base = url.lud_dn.map { String(cString: $0) } ?? ""
        guard scheme == "ldap" || scheme == "ldaps", !host.isEmpty, !base.isEmpty else { return nil }
        let port = url.lud_port > 0 ? Int(url.lud_port) : (scheme == "ldaps" ? 636 : 389)
        self.uri = uri
        self.host = host
        self.isLDAPS = scheme == "ldaps"
        self.base = base
        connectionURI = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}

/// The directory and revocation settings of the configuration (docs/mail.md, "Finding colleagues' certificates"):
///
/// - `directory = ldap[s]://host[:port]/BASE` — a directory to search, repeatable, tried in order;
/// - `directory-bind = anonymous|simple|sasl-gssapi` (default anonymous) with, for simple, `directory-bind-dn = DN` and
///   `directory-password-file = PATH` (mode 0600, or refused; without it the password is asked on the terminal);
///   sasl-gssapi binds with the Kerberos ticket in the user's cache (run kinit first), for the service principal
///   ldap/HOST with HOST as written in the URI, and the directory maps the principal to an entry;
/// - `directory-tls = prefer|require` (default prefer): what an `ldap://` directory that offers no StartTLS gets.
///   `prefer` searches it in the clear and says so; `require` refuses it. (A simple-bind password is never sent in
///   the clear either way, and `ldaps://` is always TLS.) Prefer is the default because stripping StartTLS can hide
///   certificates but cannot plant one: every certificate found must still chain to Signet's trust store and name
///   the address, so the worst an attacker on the path gets is a failed lookup (which it could cause anyway by
///   dropping the connection) and the addresses looked up;
/// - `directory-ca-file = PATH` — the CA certificates (PEM) a directory's TLS certificate must chain to
///   (default: the system's roots);
/// - `directory-timeout-seconds` (default 10), `directory-size-limit` (entries per search, default 20),
///   `directory-cache-hours` (default 24; 0 turns the cache off);
/// - `revocation = require|prefer|off` (default prefer), and `ocsp-fetch-local = yes` to let OCSP responders
///   on loopback and link-local addresses be asked (tests, a responder on the same host).
public struct DirectorySettings: Sendable {
    /// How Signet binds to the directories.
    public enum Bind: String, Sendable { case anonymous, simple, saslGSSAPI = "sasl-gssapi" }
    /// What a revocation check that cannot be made means (`revocation =`).
    public enum Revocation: String, Sendable { case require, prefer, off }
    /// What an `ldap://` directory without StartTLS gets (`directory-tls =`).
    public enum TLS: String, Sendable { case require, prefer }

    public var servers: [DirectoryServer]
    public var bind: Bind
    public var bindDN: String?
    public var passwordFile: String?
    public var caFile: String?
    public var tls: TLS
    public var timeout: Double
    public var sizeLimit: Int
    public var cacheSeconds: Double
    public var revocation: Revocation
    public var ocspFromLocal: Bool

    /// A value that is not one its key takes, and where it was written.
    public struct BadSetting: Error, CustomStringConvertible {
        public var description: String
    }

    /// The settings in `config`.
    /// - Throws: `SignetConfig.BadValue` or `BadSetting`, naming the file and line of a value that is not one its key takes.
    public init(config: SignetConfig) throws {
        func bad(_ key: String, _ expected: String, index: Int? = nil) -> BadSetting {
            let origins = config.origins(of: key)
            let values = config.values(key)
            let at = index ?? values.count - 1
            return BadSetting(description: "\(origins.indices.contains(at) ? origins[at] : "the configuration"): \(key) = "
                              + "\(values.indices.contains(at) ? values[at] : "") is not \(expected)")
        }
        servers = []
        for (index, uri) in config.values("directory").enumerated() {
            guard let server = DirectoryServer(uri) else {
                throw bad("directory", "an ldap://host[:port]/BASE or ldaps://host[:port]/BASE address", index: index)
            }
            servers.append(server)
        }
        guard let bind = Bind(rawValue: config.value("directory-bind") ?? "anonymous") else {
            throw bad("directory-bind", "anonymous, simple or sasl-gssapi")
        }
        self.bind = bind
        bindDN = config.value("directory-bind-dn")
        passwordFile = config.value("directory-password-file")
        caFile = config.value("directory-ca-file")
        guard let tls = TLS(rawValue: config.value("directory-tls") ?? "prefer") else { throw bad("directory-tls", "require or prefer") }
        self.tls = tls
        timeout = try config.number("directory-timeout-seconds", in: 0.1...300) ?? 10
        sizeLimit = try config.integer("directory-size-limit", in: 1...1000) ?? 20
        cacheSeconds = (try config.number("directory-cache-hours", in: 0...8760) ?? 24) * 3600
        guard let revocation = Revocation(rawValue: config.value("revocation") ?? "prefer") else {
            throw bad("revocation", "require, prefer or off")
        }
        self.revocation = revocation
        ocspFromLocal = config.value("ocsp-fetch-local") == "yes"
        if bind == .simple && bindDN == nil { throw bad("directory-bind", "simple without directory-bind-dn (name the DN to bind as)") }
    }

    /// The settings as `signet report` shows them: never the password, only where it is read from.
    public var reportLines: [String] {
        var lines = servers.isEmpty ? ["directory: none configured"] : servers.map { "directory: \($0.uri)" }
        lines.append("directory-bind: \(bind.rawValue)\(bindDN.map { " as \($0)" } ?? "")")
        if bind == .saslGSSAPI { lines.append("directory-credentials: your Kerberos ticket (KRB5CCNAME, or the default cache), for ldap/HOST of each directory") }
        if bind == .simple { lines.append("directory-password: \(passwordFile.map { "from \($0)" } ?? "asked on the terminal")") }
        lines.append("directory-tls: \(tls.rawValue) (\(tls == .require ? "an ldap:// directory without StartTLS is refused" : "an ldap:// directory without StartTLS is searched in the clear"))")
        lines.append("directory-ca-file: \(caFile ?? "the system's roots")")
        lines.append("directory limits: \(DurationText.words(timeout)) time-out, \(sizeLimit) entries, cache \(DurationText.words(cacheSeconds))")
        lines.append("revocation: \(revocation.rawValue) (OCSP, then CRL)\(ocspFromLocal ? "; OCSP from local addresses allowed" : "")")
        return lines
    }
}
