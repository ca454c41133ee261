/// LDAP search filters built from what a person typed, escaped per RFC 4515 §3: `*`, `(`, `)`, `\` and NUL
/// (and every byte outside printable ASCII) become `\XX`, so a name cannot change the filter's structure
/// (`*)(mail=*` searches for that literal text, not for every entry).
public enum DirectoryFilter {
    /// `value` as an RFC 4515 assertion value.
    public static func escape(_ value: String) -> String {
        var escaped = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "*"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\\"), 0, 0x80...0xFF, 0..<0x20, 0x7F:
                escaped += "\\" + String(byte, radix: 16, uppercase: false).leftPadded(to: 2)
            default:
                escaped.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return escaped
    }

    /// Whether `query` is searched as an address (it has an `@`) rather than as a name.
    public static func isAddress(_ query: String) -> Bool { query.contains("@") }

    /// The filter for `query`: an address is matched on `mail` and on Exchange's `proxyAddresses` (`smtp:` for
    /// secondary addresses, `SMTP:` for the primary one); a name on `cn` and `displayName`.
    public static func filter(for query: String) -> String {
        let value = escape(query)
        if isAddress(query) {
            return "(|(mail=\(value))(proxyAddresses=smtp:\(value))(proxyAddresses=SMTP:\(value)))"
        }
        return "(|(cn=\(value))(displayName=\(value)))"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
