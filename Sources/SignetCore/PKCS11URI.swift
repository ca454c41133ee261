/// A PKCS#11 URI (RFC 7512), e.g. `pkcs11:token=Alice;serial=0123;object=mail;type=private`.
///
/// Signet selects tokens and objects only by URI, never by slot number.
/// Values are kept as bytes (`id` is binary; the others are UTF-8). Access
/// codes are refused in URIs (`pin-value`), because URIs end up in shell
/// history, logs and process listings.
///
/// In `SignetCore`, not the PKCS#11 layer, because both sides use it: the agent
/// selects tokens with it, the command line reads and builds the URIs the agent
/// returns without loading any token library.
public struct PKCS11URI: Sendable, Equatable, CustomStringConvertible {
    /// The one wording of "several tokens match": how many, which (label and serial), and what to do.
    /// - Parameter uri: the URI given, or nil when none was (every present token matched).
    public static func ambiguity(_ uri: String?, tokens: [String]) -> String {
        "\(tokens.count) tokens match\(uri.map { " \($0)" } ?? "") (\(tokens.joined(separator: "; "))); "
            + "name one with --token and its URI from `signet tokens` (serial= tells them apart)."
    }

    /// Why a text is not an acceptable PKCS#11 URI.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The reason, in words ("unknown attribute \"bogus\"").
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { "invalid PKCS#11 URI: \(reason)" }
    }

    /// Path attributes in order, values percent-decoded.
    public private(set) var path: [(name: String, value: [UInt8])]
    /// Query attributes in order (`module-name`, `module-path`, `pin-source`).
    public private(set) var query: [(name: String, value: [UInt8])]

    static let tokenAttributes: Set<String> = ["token", "manufacturer", "serial", "model"]
    static let libraryAttributes: Set<String> = ["library-manufacturer", "library-description", "library-version"]
    static let slotAttributes: Set<String> = ["slot-description", "slot-manufacturer", "slot-id"]
    static let objectAttributes: Set<String> = ["object", "type", "id"]
    static let knownQuery: Set<String> = ["module-name", "module-path", "pin-source"]

    public init(path: [(String, [UInt8])] = [], query: [(String, [UInt8])] = []) {
        self.path = path.map { (name: $0.0, value: $0.1) }
        self.query = query.map { (name: $0.0, value: $0.1) }
    }

    /// Parses `text`.
    /// - Throws: `ParseError` for a missing `pkcs11:` scheme, bad
    ///   percent-encoding, an unknown attribute, a repeated attribute, a bad
    ///   `type`, or any `pin-value`.
    public init(parsing text: String) throws(ParseError) {
        guard text.lowercased().hasPrefix("pkcs11:") else { throw ParseError("it must start with pkcs11:") }
        let body = text.dropFirst("pkcs11:".count)
        let parts = body.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var path: [(String, [UInt8])] = []
        var query: [(String, [UInt8])] = []
        var seen = Set<String>()
        for component in parts[0].split(separator: ";", omittingEmptySubsequences: true) {
            let (name, value) = try PKCS11URI.attribute(component)
            let known = PKCS11URI.tokenAttributes.union(PKCS11URI.libraryAttributes)
                .union(PKCS11URI.slotAttributes).union(PKCS11URI.objectAttributes)
            guard known.contains(name) || name.hasPrefix("x-") else {
                throw ParseError("unknown attribute \"\(name)\"")
            }
            guard seen.insert(name).inserted else { throw ParseError("attribute \"\(name)\" is given twice") }
            if name == "type", !["public", "private", "cert", "secret-key", "data"].contains(String(decoding: value, as: UTF8.self)) {
                throw ParseError("type must be public, private, cert, secret-key or data")
            }
            path.append((name, value))
        }
        if parts.count == 2 {
            for component in parts[1].split(separator: "&", omittingEmptySubsequences: true) {
                let (name, value) = try PKCS11URI.attribute(component)
                if name == "pin-value" {
                    throw ParseError("access codes are not accepted in URIs; Signet asks for them on the terminal")
                }
                guard PKCS11URI.knownQuery.contains(name) || name.hasPrefix("x-") else {
                    throw ParseError("unknown query attribute \"\(name)\"")
                }
                query.append((name, value))
            }
        }
        self.init(path: path, query: query)
    }

    /// The decoded value of a path attribute.
    public func value(_ name: String) -> [UInt8]? { path.first { $0.name == name }?.value }

    /// The decoded value of a path attribute as text.
    public func text(_ name: String) -> String? { value(name).map { String(decoding: $0, as: UTF8.self) } }

    /// A copy with `name` set to `value` (replacing any earlier value).
    public func setting(_ name: String, _ value: [UInt8]) -> PKCS11URI {
        var copy = self
        copy.path.removeAll { $0.name == name }
        copy.path.append((name: name, value: value))
        return copy
    }

    /// A copy without the attribute `name`.
    public func removing(_ name: String) -> PKCS11URI {
        var copy = self
        copy.path.removeAll { $0.name == name }
        return copy
    }

    /// Whether this URI selects the token whose attributes `actual` reports, by their RFC 7512
    /// names (`token`, `manufacturer`, `serial`, `model`, `library-*`, `slot-*`, and the query's
    /// `module-path` and `module-name`). Every token, library and slot attribute present must equal
    /// the token's; one the token does not report (`actual` gives nil), or one not recognised,
    /// never matches (RFC 7512 §2.3). Object attributes are ignored here.
    public func selects(token actual: (String) -> String?) -> Bool {
        for (name, value) in path where !PKCS11URI.objectAttributes.contains(name) {
            guard let have = actual(name), have == String(decoding: value, as: UTF8.self) else { return false }
        }
        for (name, value) in query {
            let expected = String(decoding: value, as: UTF8.self)
            if name == "module-path", expected != actual("module-path") { return false }
            if name == "module-name", expected != actual("module-name"),
               expected != actual("module-path")?.split(separator: "/").last.map(String.init) { return false }
        }
        return true
    }

    public static func == (lhs: PKCS11URI, rhs: PKCS11URI) -> Bool {
        lhs.description == rhs.description
    }

    /// The URI text, percent-encoding what RFC 7512 requires (and `id` always).
    public var description: String {
        var text = "pkcs11:" + path.map { "\($0.name)=\(PKCS11URI.encode($0.value, always: $0.name == "id"))" }.joined(separator: ";")
        if !query.isEmpty {
            text += "?" + query.map { "\($0.name)=\(PKCS11URI.encode($0.value, always: false))" }.joined(separator: "&")
        }
        return text
    }

    private static func attribute(_ component: Substring) throws(ParseError) -> (String, [UInt8]) {
        guard let eq = component.firstIndex(of: "=") else {
            throw ParseError("\"\(component)\" is not name=value")
        }
        let name = String(component[..<eq]).lowercased()
        guard let value = decode(component[component.index(after: eq)...]) else {
            throw ParseError("bad percent-encoding in \"\(name)\"")
        }
        return (name, value)
    }

    private static func decode(_ text: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let byte = bytes.popFirst() {
            if byte == 0x25 {
                guard bytes.count >= 2, let pair = Hex.decode(String(decoding: bytes.prefix(2), as: UTF8.self)), pair.count == 1 else { return nil }
                out.append(pair[0])
                bytes = bytes.dropFirst(2)
            } else {
                out.append(byte)
            }
        }
        return out
    }

    /// RFC 3986 unreserved characters plus the pchar sub-delims RFC 7512 allows unencoded
    /// (';' and '?' and '&' and '=' and '%' are always encoded).
    private static func encode(_ bytes: [UInt8], always: Bool) -> String {
        var out = ""
        for byte in bytes {
            let allowed = !always && ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || [0x2d, 0x2e, 0x5f, 0x7e, 0x3a, 0x5b, 0x5d, 0x40, 0x21, 0x24, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c].contains(byte))
            out += allowed ? String(UnicodeScalar(byte)) : "%" + Hex.encode([byte], uppercase: true)
        }
        return out
    }
}
