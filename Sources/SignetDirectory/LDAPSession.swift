import CLDAP
import Glibc
import SignetCore

/// Why a directory could not be used: which directory, what failed, and libldap's own words.
public struct DirectoryError: Error, Equatable, CustomStringConvertible {
    /// The directory's URI as configured.
    public var directory: String
    /// What happened, in words a person can act on.
    public var reason: String
    /// libldap's result code, when the directory answered one (0 otherwise).
    public var code: Int32

    public init(directory: String, reason: String, code: Int32 = 0) {
        self.directory = directory
        self.reason = reason
        self.code = code
    }

    public var description: String { "\(directory): \(reason)" }
}

/// One connection to one directory through OpenLDAP's libldap: every raw `ldap_*` call Signet makes is in
/// this file, which turns its result codes into `DirectoryError`s. The connection is bounded: a connect
/// and TLS handshake time-out (`LDAP_OPT_NETWORK_TIMEOUT`), a time-out for each operation's answer
/// (`LDAP_OPT_TIMEOUT` and the search's own), a size limit on results, a limit on each message the server
/// sends (the sockbuf's maximum incoming size), and no referrals chased (a referral names another server).
final class LDAPSession {
    /// How the connection is protected, for the report.
    enum Security: String, Sendable {
        case ldaps = "ldaps (TLS, server certificate checked)"
        case startTLS = "StartTLS (server certificate checked)"
        case plain = "plain (the server offers no StartTLS)"
    }

    /// The largest message read from a server: an entry with a few certificates is a few kilobytes.
    static let maximumMessage = 4 << 20

    private let ld: OpaquePointer
    let server: DirectoryServer
    private(set) var security: Security = .plain

    /// libldap reads ~/.ldaprc, ./ldaprc, /etc/ldap/ldap.conf and `LDAP*` environment variables (among them
    /// `LDAPTLS_REQCERT=never`) when first used; Signet sets every option it relies on itself and wants none of those.
    private static let ignoreLDAPConfiguration: Void = { setenv("LDAPNOINIT", "1", 1) }()

    /// Connects (lazily, as libldap does) and, for `ldap://`, asks for StartTLS.
    /// - Parameters:
    ///   - caFile: the CA certificates the server's certificate must chain to (PEM); the system's roots when nil.
    ///   - timeout: seconds for the connection, the TLS handshake and each answer.
    /// - Throws: `DirectoryError` when the URI is refused, the server cannot be reached within `timeout`,
    ///   or its TLS certificate does not check.
    ///   - requireTLS: refuse an `ldap://` server that offers no StartTLS (`directory-tls = require`).
    init(server: DirectoryServer, caFile: String?, timeout: Double, requireTLS: Bool = false) throws(DirectoryError) {
        _ = Self.ignoreLDAPConfiguration
        self.server = server
        var handle: OpaquePointer?
        let rc = ldap_initialize(&handle, server.connectionURI)
        guard rc == LDAP_SUCCESS, let handle else {
            throw DirectoryError(directory: server.uri, reason: "libldap refuses the address (\(String(cString: ldap_err2string(rc))))")
        }
        ld = handle
        var version = LDAP_VERSION3
        var seconds = timeval(tv_sec: Int(timeout.rounded(.down)), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        var demand = LDAP_OPT_X_TLS_DEMAND
        var client: Int32 = 0
        let maximum = Self.maximumMessage
        let roots = caFile ?? "/etc/ssl/certs/ca-certificates.crt"
        let set: [(Int32, String, () -> Int32)] = [
            (LDAP_OPT_PROTOCOL_VERSION, "protocol version 3", { ldap_set_option(handle, LDAP_OPT_PROTOCOL_VERSION, &version) }),
            (LDAP_OPT_REFERRALS, "no referrals", { ldap_set_option(handle, LDAP_OPT_REFERRALS, CLDAP_optionOff()) }),
            // A GSSAPI bind asks for the ticket of ldap/HOST with HOST as written in the URI, not a name found by a reverse
            // DNS lookup of its address (which whoever answers DNS would choose).
            (LDAP_OPT_X_SASL_NOCANON, "no host name canonicalisation", { ldap_set_option(handle, LDAP_OPT_X_SASL_NOCANON, CLDAP_optionOn()) }),
            (LDAP_OPT_NETWORK_TIMEOUT, "the connect time-out", { ldap_set_option(handle, LDAP_OPT_NETWORK_TIMEOUT, &seconds) }),
            (LDAP_OPT_TIMEOUT, "the answer time-out", { ldap_set_option(handle, LDAP_OPT_TIMEOUT, &seconds) }),
            (LDAP_OPT_X_TLS_REQUIRE_CERT, "checking the server's certificate", { ldap_set_option(handle, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) }),
            (LDAP_OPT_X_TLS_CACERTFILE, "the CA file \(roots)", { ldap_set_option(handle, LDAP_OPT_X_TLS_CACERTFILE, roots) }),
            (LDAP_OPT_X_TLS_NEWCTX, "a TLS context", { ldap_set_option(handle, LDAP_OPT_X_TLS_NEWCTX, &client) }),
            (0, "the message size limit", { CLDAP_setMaxIncoming(handle, ber_len_t(maximum)) == 1 ? LDAP_OPT_SUCCESS : -1 }),
        ]
        // (A throw once `ld` is set runs deinit, which unbinds: no unbind here.)
        for (_, what, call) in set where call() != LDAP_OPT_SUCCESS {
            throw DirectoryError(directory: server.uri, reason: "libldap could not set \(what)")
        }
        if server.isLDAPS {
            security = .ldaps
            return
        }
        let started = ldap_start_tls_s(ld, nil, nil)
        switch started {
        case LDAP_SUCCESS:
            security = .startTLS
        case LDAP_PROTOCOL_ERROR, LDAP_UNAVAILABLE, LDAP_UNWILLING_TO_PERFORM, LDAP_OPERATIONS_ERROR, LDAP_UNAVAILABLE_CRITICAL_EXTENSION:
            // The server answered that it has no StartTLS: carry on in the clear and say so, unless TLS is required.
            guard !requireTLS else {
                throw DirectoryError(directory: server.uri, reason: "the server offers no StartTLS (it answered: \(String(cString: ldap_err2string(started)))), "
                                     + "and directory-tls = require: Signet does not search it in the clear; use the directory's ldaps:// address, "
                                     + "or set directory-tls = prefer to accept lookups in the clear", code: started)
            }
            security = .plain
        default:
            throw failure(started, doing: "asking for StartTLS")
        }
    }

    deinit { ldap_unbind_ext_s(ld, nil, nil) }

    /// A `DirectoryError` for result code `rc` of the operation described by `doing`.
    private func failure(_ rc: Int32, doing: String) -> DirectoryError {
        let detail = diagnostic()
        let text = String(cString: ldap_err2string(rc)) + (detail.map { ": \(Console.safe($0))" } ?? "")
        let reason: String
        switch rc {
        case LDAP_TIMEOUT:
            reason = "no answer within the time-out while \(doing) (the server accepted the connection but said nothing; directory-timeout-seconds sets the wait)"
        case LDAP_SERVER_DOWN where server.isLDAPS:
            reason = "cannot reach the server, or the TLS handshake failed, while \(doing) (\(text)); check the host and port, and that "
                + "the server's certificate chains to the system's roots or to directory-ca-file and names the host in the URI"
        case LDAP_SERVER_DOWN:
            reason = "cannot reach the server while \(doing) (\(text)); check the host and port, or whether it is running"
        case LDAP_CONNECT_ERROR:
            reason = "the TLS connection failed while \(doing) (\(text)); the server's certificate must chain to "
                + "the system's roots or to directory-ca-file, and name the host in the URI"
        case LDAP_INVALID_CREDENTIALS:
            reason = "the directory refuses the bind DN and password (\(text)); check directory-bind-dn and directory-password-file"
        case LDAP_INSUFFICIENT_ACCESS, LDAP_STRONG_AUTH_REQUIRED, LDAP_CONFIDENTIALITY_REQUIRED:
            reason = "the directory refuses \(doing) (\(text))"
        default:
            reason = "\(doing) failed (\(text))"
        }
        return DirectoryError(directory: server.uri, reason: reason, code: rc)
    }

    /// A simple bind as `dn` with `password` (sent only over TLS: a password is never sent in the clear).
    /// - Throws: `DirectoryError` when the connection is not protected or the directory refuses.
    func bind(dn: String, password: SharedSecret) throws(DirectoryError) {
        guard security != .plain else {
            throw DirectoryError(directory: server.uri, reason: "the server offers no TLS, and Signet does not send a password in the clear; "
                                 + "use an ldaps:// directory or one that offers StartTLS")
        }
        let rc = password.use { secret in
            secret.withUnsafeBytes { bytes in
                var credential = berval(bv_len: ber_len_t(bytes.count),
                                        bv_val: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: CChar.self)))
                return ldap_sasl_bind_s(ld, dn, nil, &credential, nil, nil, nil)
            }
        }
        guard rc == LDAP_SUCCESS else { throw failure(rc, doing: "binding as \(dn)") }
    }

    /// A SASL GSSAPI bind with the user's Kerberos ticket (no password passes through Signet).
    /// - Throws: `DirectoryError` saying to run kinit when there is no ticket, or what else failed.
    func bindKerberos() throws(DirectoryError) {
        let rc = CLDAP_bindGSSAPI(ld)
        guard rc != LDAP_SUCCESS else { return }
        let detail = diagnostic() ?? ""
        let host = server.host
        let reason: String
        if detail.contains("No Kerberos credentials") || detail.contains("No credentials cache") || detail.contains("expired") {
            reason = "no Kerberos ticket: run kinit (\(Console.safe(detail)))"
        } else if detail.contains("not found in Kerberos database") {
            reason = "the Kerberos realm has no service principal ldap/\(host) (\(Console.safe(detail))); Signet asks for ldap/HOST with HOST as "
                + "written in the directory's URI (no reverse-DNS lookup), so write the name the directory's principal has"
        } else if detail.contains("No worthy mechs") || rc == LDAP_AUTH_UNKNOWN {
            reason = "SASL has no GSSAPI mechanism here (\(Console.safe(detail.isEmpty ? String(cString: ldap_err2string(rc)) : detail))); "
                + "install Cyrus SASL's GSSAPI module (Debian: libsasl2-modules-gssapi-mit)"
        } else {
            throw failure(rc, doing: "binding with your Kerberos ticket (SASL GSSAPI)")
        }
        throw DirectoryError(directory: server.uri, reason: reason, code: rc)
    }

    /// The DN of the entry the directory binds this connection to (RFC 4532), or nil when it names none (an
    /// anonymous connection, or an identity mapped to no entry), with the identity it gave.
    /// - Throws: `DirectoryError` when the directory does not answer the question.
    func boundEntry() throws(DirectoryError) -> (dn: String?, identity: String) {
        var rc: Int32 = 0
        guard let answer = CLDAP_whoAmI(ld, &rc) else { throw failure(rc, doing: "asking which entry you are bound as (Who am I?)") }
        defer { free(answer) }
        let identity = String(cString: answer)
        return (identity.hasPrefix("dn:") && identity.count > 3 ? String(identity.dropFirst(3)) : nil, identity)
    }

    /// libldap's diagnostic message for the last operation, if any.
    private func diagnostic() -> String? {
        var message: UnsafeMutablePointer<CChar>?
        ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &message)
        defer { if let message { ldap_memfree(message) } }
        return message.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// One entry of a search: its DN and its attributes' values (the attribute names as the server sent them).
    struct Entry: Sendable {
        var dn: String
        var values: [(attribute: String, value: [UInt8])]
        /// Values left out because they were larger than the limit, by attribute.
        var oversized: [String]
    }

    /// A subtree search under `base` (only `base` itself when `baseOnly`).
    /// - Parameters:
    ///   - sizeLimit: the most entries returned; a search that matches more returns the first ones and `truncated`.
    ///   - valueLimit: values larger than this are left out (and named in the entry's `oversized`).
    /// - Throws: `DirectoryError` when the search fails or times out.
    func search(base: String, filter: String, attributes: [String], sizeLimit: Int, valueLimit: Int,
                timeout: Double, baseOnly: Bool = false) throws(DirectoryError) -> (entries: [Entry], truncated: Bool) {
        var names = attributes.map { strdup($0) } + [nil]
        defer { for name in names { free(name) } }
        var wait = timeval(tv_sec: Int(timeout.rounded(.down)), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        var result: OpaquePointer?
        let rc = names.withUnsafeMutableBufferPointer { pointers in
            ldap_search_ext_s(ld, base, baseOnly ? CLDAP_scopeBase() : CLDAP_scopeSubtree(), filter, pointers.baseAddress, 0, nil, nil, &wait, Int32(sizeLimit), &result)
        }
        defer { if let result { ldap_msgfree(result) } }
        guard rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED else { throw failure(rc, doing: "searching \(base)") }
        var entries: [Entry] = []
        var entry = ldap_first_entry(ld, result)
        while let current = entry {
            defer { entry = ldap_next_entry(ld, current) }
            let dnPointer = ldap_get_dn(ld, current)
            let dn = dnPointer.map { String(cString: $0) } ?? ""
            if let dnPointer { ldap_memfree(dnPointer) }
            var found = Entry(dn: dn, values: [], oversized: [])
            var ber: OpaquePointer?
            var attribute = ldap_first_attribute(ld, current, &ber)
            while let name = attribute {
                let attributeName = String(cString: name)
                if let values = ldap_get_values_len(ld, current, name) {
                    var index = 0
                    while let value = values[index] {
                        let length = Int(value.pointee.bv_len)
                        if length > valueLimit {
                            found.oversized.append(attributeName)
                        } else if let bytes = value.pointee.bv_val {
                            found.values.append((attributeName, Array(UnsafeRawBufferPointer(start: bytes, count: length))))
                        } else {
                            found.values.append((attributeName, []))
                        }
                        index += 1
                    }
                    ldap_value_free_len(values)
                }
                ldap_memfree(name)
                attribute = ldap_next_attribute(ld, current, ber)
            }
            if let ber { ber_free(ber, 0) }
            entries.append(found)
        }
        return (entries, rc == LDAP_SIZELIMIT_EXCEEDED)
    }

    /// Adds (`add`) or deletes binary `values` of `attribute` on `dn`.
    /// - Throws: `DirectoryError` when the directory refuses.
    func modify(dn: String, add: Bool, attribute: String, values: [[UInt8]]) throws(DirectoryError) {
        try modify(dn: dn, operation: add ? LDAP_MOD_ADD : LDAP_MOD_DELETE, attribute: attribute, values: values)
    }

    /// Replaces every value of `attribute` on `dn` with `values` (none: the attribute goes). For attributes
    /// whose schema has no equality rule (`userSMIMECertificate` in OpenLDAP's), where one value cannot be deleted.
    /// - Throws: `DirectoryError` when the directory refuses.
    func replace(dn: String, attribute: String, values: [[UInt8]]) throws(DirectoryError) {
        try modify(dn: dn, operation: LDAP_MOD_REPLACE, attribute: attribute, values: values)
    }

    private func modify(dn: String, operation: Int32, attribute: String, values: [[UInt8]]) throws(DirectoryError) {
        let add = operation == LDAP_MOD_ADD
        let copies = values.map { value -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, value.count))
            value.withUnsafeBytes { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: value.count) }
            return buffer
        }
        defer { for copy in copies { copy.deallocate() } }
        var bervals = zip(values, copies).map { berval(bv_len: ber_len_t($0.0.count), bv_val: $0.1) }
        let rc = bervals.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var pointers: [UnsafeMutablePointer<berval>?] = (0..<buffer.count).map { buffer.baseAddress! + $0 }
            return pointers.withUnsafeMutableBufferPointer {
                CLDAP_modifyBinary(ld, dn, operation, attribute, $0.baseAddress, Int32(buffer.count))
            }
        }
        guard rc == LDAP_SUCCESS else { throw failure(rc, doing: "\(add ? "adding" : operation == LDAP_MOD_REPLACE ? "replacing" : "removing") \(attribute) on \(dn)") }
    }
}
