import SignetCore

/// A distinguished name as people type it: `C=CA,ST=ON,O=Example Org,CN=8934282`.
///
/// Syntax is RFC 4514's: `,` separates RDNs, `+` joins the attributes of a
/// multi-valued RDN, and `\,` `\+` `\"` `\\` `\;` `\<` `\>` `\=` `\#` or `\XX` (hex)
/// escape. The order is the order written, most significant first, as in
/// `openssl req -subj` and in what `openssl x509 -subject` prints (RFC 4514
/// itself writes the reverse; deployment guides write C first, so Signet
/// takes the text as people see it).
public struct DistinguishedName: Sendable, Equatable, CustomStringConvertible {
    /// One attribute: a short name (`CN`, `O`, …) or a dotted OID, and its value.
    public struct Attribute: Sendable, Equatable {
        public var type: String
        public var value: String
        public init(type: String, value: String) { self.type = type; self.value = value }
    }

    /// RDNs in encoding order; most have a single attribute.
    public var relativeNames: [[Attribute]]

    /// Short names OpenSSL knows, with the spellings people use.
    static let aliases: [String: String] = [
        "C": "C", "ST": "ST", "S": "ST", "L": "L", "O": "O", "OU": "OU", "CN": "CN", "DC": "DC", "UID": "UID",
        "E": "emailAddress", "EMAIL": "emailAddress", "EMAILADDRESS": "emailAddress", "SERIALNUMBER": "serialNumber",
        "STREET": "street", "TITLE": "title", "GN": "GN", "GIVENNAME": "GN", "SN": "SN", "SURNAME": "SN", "INITIALS": "initials",
        "POSTALCODE": "postalCode", "ORGANIZATIONIDENTIFIER": "organizationIdentifier",
    ]

    /// A subject that could not be read.
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Parses `text`.
    /// - Throws: `ParseError` for an empty name, a missing `=`, an unknown attribute type, a bad escape or an empty value.
    public init(parsing text: String) throws(ParseError) {
        var names: [[Attribute]] = []
        var current: [Attribute] = []
        var type = "", value = "", inValue = false, pendingSpaces = ""
        var escapedBytes: [UInt8] = []
        var characters = Array(text.unicodeScalars)[...]

        func flushEscapes() throws(ParseError) {
            guard !escapedBytes.isEmpty else { return }
            guard let decoded = String(validating: escapedBytes, as: UTF8.self) else {
                throw ParseError(description: "The escaped bytes in \"\(text)\" are not UTF-8.")
            }
            value += decoded
            escapedBytes = []
        }
        func finishAttribute() throws(ParseError) {
            try flushEscapes()
            let trimmedType = String(type.trimmingSpaces())
            guard inValue else {
                throw ParseError(description: "\"\(trimmedType)\" has no value; write TYPE=value, for example CN=8934282.")
            }
            guard !value.isEmpty else { throw ParseError(description: "\(trimmedType)= has an empty value.") }
            let isOID = trimmedType.allSatisfy { $0.isNumber || $0 == "." } && trimmedType.contains(".")
            guard let canonical = isOID ? trimmedType : DistinguishedName.aliases[trimmedType.uppercased()] else {
                throw ParseError(description: "Unknown attribute type \"\(trimmedType)\"; use C, ST, L, O, OU, CN, DC, E, SERIALNUMBER, UID or a dotted OID.")
            }
            current.append(Attribute(type: canonical, value: value))
            type = ""; value = ""; inValue = false; pendingSpaces = ""
        }

        while let scalar = characters.popFirst() {
            if !inValue {
                switch scalar {
                case "=": inValue = true
                case ",", "+": throw ParseError(description: "\"\(type.trimmingSpaces())\" has no value; write TYPE=value, for example CN=8934282.")
                default: type.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\\":
                guard let next = characters.popFirst() else { throw ParseError(description: "\"\(text)\" ends with a lone backslash.") }
                if ",+\"\\;<>=# ".unicodeScalars.contains(next) {
                    try flushEscapes()
                    value += pendingSpaces; pendingSpaces = ""
                    value.unicodeScalars.append(next)
                } else if "0123456789abcdefABCDEF".unicodeScalars.contains(next), let low = characters.popFirst(),
                          let byte = UInt8(String(next) + String(low), radix: 16) {
                    value += pendingSpaces; pendingSpaces = ""
                    escapedBytes.append(byte)
                } else {
                    throw ParseError(description: "Bad escape \"\\\(next)\" in \"\(text)\"; escape a comma as \\, or write \\2C.")
                }
            case ",":
                try finishAttribute()
                names.append(current)
                current = []
            case "+":
                try finishAttribute()
            case " " where value.isEmpty && escapedBytes.isEmpty:
                continue  // spaces after '='
            case " ":
                try flushEscapes()
                pendingSpaces.append(" ")  // kept only if more text follows
            default:
                try flushEscapes()
                value += pendingSpaces; pendingSpaces = ""
                value.unicodeScalars.append(scalar)
            }
        }
        if inValue || !type.trimmingSpaces().isEmpty {
            try finishAttribute()
            names.append(current)
        }
        guard !names.isEmpty else { throw ParseError(description: "The subject is empty; write for example C=CA,ST=ON,O=Example Org,CN=8934282.") }
        relativeNames = names
    }

    /// The name written back in the same syntax, with RFC 4514 escaping.
    public var description: String {
        relativeNames.map { rdn in
            rdn.map { "\($0.type)=\(DistinguishedName.escape($0.value))" }.joined(separator: "+")
        }.joined(separator: ",")
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for (index, character) in value.enumerated() {
            if ",+\"\\;<>=".contains(character) || (index == 0 && (character == "#" || character == " "))
                || (index == value.count - 1 && character == " ") {
                out.append("\\")
            }
            out.append(character)
        }
        return out
    }
}
