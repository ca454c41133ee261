import Foundation
import SignetTestSupport
import Testing

/// `signet cert publish` and `unpublish` with a simple bind to a real slapd, checked with `ldapsearch` (issue 27, part 2).
@Suite("Publishing your certificate to a real slapd", .serialized)
final class DirectoryPublishTests {
    let world: DirectoryWorld
    let agent: AgentFixture
    let password: String
    let me = "uid=me,ou=people,\(DirectoryWorld.base)"

    init() throws {
        world = try DirectoryWorld(ports: (41611, 41612))
        password = world.peer.path("me-password")
        try "my-directory-password\n".write(toFile: password, atomically: true, encoding: .utf8)
        chmod(password, 0o600)
        agent = try world.unlockedAgent(config: "directory = \(world.plainURI)\n" + world.caLine + "directory-bind = simple\n"
                                        + "directory-bind-dn = \(me)\ndirectory-password-file = \(password)\n")
    }

    deinit { agent.stop() }

    func enrol(_ name: String, email: String, id: String) throws -> String { try world.enrol(agent, name, email: email, id: id) }

    func published(_ attribute: String) throws -> [String] { try world.published(attribute, of: me) }


    @Test("publish adds the certificate to userCertificate;binary and a PKCS#7 to userSMIMECertificate; unpublish removes both")
    func publishThenUnpublish() throws {
        let pem = try enrol("mail", email: "me@example.org", id: "01")
        let publish = try agent.signet(["cert", "publish"])
        #expect(publish.status == 0, "\(publish.errors)")
        #expect(publish.output.contains("userCertificate;binary of \(me) in \(world.plainURI): added"), "\(publish.output)")
        #expect(publish.output.contains("userSMIMECertificate of \(me) in \(world.plainURI): added"), "\(publish.output)")
        let entry = try Run.checked("ldapsearch", ["-x", "-LLL", "-H", "ldap://127.0.0.1:\(world.ldapPort)", "-b", me]).output
        #expect(try published("userCertificate;binary") == [try world.derBase64(pem)], "\(entry)")
        let bundles = try published("userSMIMECertificate")
        #expect(bundles.count == 1)
        if let bundle = bundles.first {
            let file = world.peer.path("bundle.p7b")
            try (Data(base64Encoded: bundle) ?? Data()).write(to: URL(fileURLWithPath: file))
            let certs = try Run.checked("openssl", ["pkcs7", "-inform", "DER", "-in", file, "-print_certs", "-noout"]).output
            #expect(certs.contains("CN = Me mail") && certs.contains("CN = Example Mail CA"), "\(certs)")
        }
        // A colleague finds it (another home, anonymous).
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        #expect(try world.run(["cert", "find", "me@example.org", "--offline"]).status == 0)
        // Publishing again changes nothing.
        let again = try agent.signet(["cert", "publish"])
        #expect(again.output.contains("already there"), "\(again.output)")

        let id = try world.id("mail")
        let unpublish = try agent.signet(["cert", "unpublish", id])
        #expect(unpublish.status == 0, "\(unpublish.errors)")
        #expect(unpublish.output.contains("userCertificate;binary of \(me) in \(world.plainURI): removed 1 value"), "\(unpublish.output)")
        #expect(try published("userCertificate;binary").isEmpty)
        #expect(try published("userSMIMECertificate").isEmpty)
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(log.contains("BIND dn=\"\(me)\" method=128"), "published without binding as the entry")
    }

    @Test("A certificate for another address than the entry's is not published, and nothing is written")
    func otherAddressRefused() throws {
        _ = try enrol("other", email: "someone.else@example.org", id: "02")
        let publish = try agent.signet(["cert", "publish"])
        #expect(publish.status == 1)
        #expect(publish.errors.contains("has the address me@example.org, and the certificate is for someone.else@example.org; nothing was published"),
                "\(publish.errors)")
        #expect(try published("userCertificate;binary").isEmpty)
    }
}
