import SignetCore
import Testing

// Moved from SignetPKCS11Tests with PKCS11URI itself; the parse error is now PKCS11URI.ParseError.
@Suite("PKCS#11 URI parsing")
struct URIParsingTests {
    @Test("Percent-encoded values and binary ids decode to bytes")
    func decodes() throws {
        let uri = try PKCS11URI(parsing: "pkcs11:token=My%20Token;id=%01%02%ff;object=mail;type=private")
        #expect(uri.text("token") == "My Token")
        #expect(uri.value("id") == [1, 2, 0xff])
        #expect(uri.text("type") == "private")
        #expect(uri.description == "pkcs11:token=My%20Token;id=%01%02%FF;object=mail;type=private")
    }

    @Test("An access code in a URI is refused with the reason")
    func refusesPinValue() {
        let error = #expect(throws: PKCS11URI.ParseError.self) { try PKCS11URI(parsing: "pkcs11:token=a?pin-value=1234") }
        #expect(error?.description.contains("not accepted in URIs") == true)
    }

    @Test("Malformed URIs are errors", arguments: [
        "token=a", "pkcs11:token=%zz", "pkcs11:token=a;token=b", "pkcs11:bogus=1", "pkcs11:type=key", "pkcs11:token",
    ])
    func malformed(_ text: String) {
        #expect(throws: PKCS11URI.ParseError.self) { try PKCS11URI(parsing: text) }
    }

    @Test("Module selection in the query is kept")
    func query() throws {
        let uri = try PKCS11URI(parsing: "pkcs11:token=a?module-name=softhsm2")
        #expect(uri.query.first?.name == "module-name")
        #expect(uri.description == "pkcs11:token=a?module-name=softhsm2")
    }
}
