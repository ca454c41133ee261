import SignetOpenSSL
import Testing

@Suite("Subjects as people type them (RFC 4514 syntax, written order)")
struct DistinguishedNameTests {
    typealias Attribute = DistinguishedName.Attribute

    @Test("The deployment guides' form parses in the order written")
    func plain() throws {
        let name = try DistinguishedName(parsing: "C=CA,ST=ON,O=Example Org,CN=8934282")
        #expect(name.relativeNames == [[Attribute(type: "C", value: "CA")], [Attribute(type: "ST", value: "ON")],
                                       [Attribute(type: "O", value: "Example Org")], [Attribute(type: "CN", value: "8934282")]])
        #expect(name.description == "C=CA,ST=ON,O=Example Org,CN=8934282")
    }

    @Test("Escaped commas, plus signs, hex escapes, spaces around separators and multi-valued RDNs")
    func escapes() throws {
        let name = try DistinguishedName(parsing: #"C=CA, O=Smith\, Jones \+ Co ,OU=R\C3\A9seau,CN=A+UID=42,E=a@b.org,1.2.3.4=x"#)
        #expect(name.relativeNames == [
            [Attribute(type: "C", value: "CA")], [Attribute(type: "O", value: "Smith, Jones + Co")], [Attribute(type: "OU", value: "Réseau")],
            [Attribute(type: "CN", value: "A"), Attribute(type: "UID", value: "42")], [Attribute(type: "emailAddress", value: "a@b.org")],
            [Attribute(type: "1.2.3.4", value: "x")],
        ])
        #expect(name.description == #"C=CA,O=Smith\, Jones \+ Co,OU=Réseau,CN=A+UID=42,emailAddress=a@b.org,1.2.3.4=x"#)
        #expect(try DistinguishedName(parsing: name.description) == name)
    }

    @Test("Mistakes are refused with a message that shows how to write it", arguments: [
        "", "CN", "CN=", "XX=1", "CN=a\\", "CN=a\\zz", "CN=\\C3", "=x",
    ])
    func refused(_ text: String) {
        #expect(throws: DistinguishedName.ParseError.self) { try DistinguishedName(parsing: text) }
    }
}
