import SignetOpenSSL
import Testing

/// `CertificateRequest.checkedOptions`: what `signet csr` refuses before it asks the token to sign a request.
@Suite("Certificate request options")
struct CertificateRequestOptionsTests {
    func refusal(_ purpose: String, upns: [String] = [], digest: String = "sha256") -> String? {
        do throws(CertificateRequest.OptionError) {
            _ = try CertificateRequest.checkedOptions(purpose: purpose, userPrincipalNames: upns, digest: digest)
            return nil
        } catch { return error.description }
    }

    @Test("Purposes mail, login and both; a UPN only with login and only as user@domain; SHA-2 digests only")
    func options() throws {
        #expect(try CertificateRequest.checkedOptions(purpose: "mail, LOGIN", userPrincipalNames: ["a@corp.example"], digest: "sha384") == [.mail, .login])
        #expect(refusal("mail") == nil && refusal("login", upns: ["a@corp.example"]) == nil)
        #expect(refusal("mail,") == "--purpose must be mail, login or mail,login (not \"mail,\").")
        #expect(refusal("vpn\u{1B}[2J")?.contains("\u{1B}") == false)
        #expect(refusal("mail", upns: ["a@corp.example"]) == "A UPN (--upn) maps a login certificate to an account; add --purpose login (or mail,login).")
        #expect(refusal("login", upns: ["alice"]) == "The UPN \"alice\" has no @domain; write it as user@domain, as in Active Directory.")
        #expect(refusal("mail", digest: "sha1") == "--digest must be sha256, sha384 or sha512.")
    }
}
