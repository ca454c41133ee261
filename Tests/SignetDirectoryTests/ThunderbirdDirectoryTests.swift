import Foundation
import SignetTestSupport
import Testing

/// One directory serves both: a headless Thunderbird, with the test slapd as an LDAP address book, fetches alice's
/// certificate for encryption through its own code (Tests/thunderbird/tb_ldap.py) — the one `signet cert find` chooses.
@Suite("Thunderbird reads the same directory", .serialized)
final class ThunderbirdDirectoryTests {
    let world: DirectoryWorld

    init() throws { world = try DirectoryWorld(ports: (41651, 41652)) }

    @Test("Thunderbird's certificate fetching finds alice's certificate in the slapd Signet uses, and takes it as a recipient")
    func thunderbirdFindsTheSameCertificate() throws {
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        let signet = try world.run(["cert", "find", "alice@example.org", "--offline", "--json"])
        #expect(signet.status == 0, "\(signet.errors)")
        let expected = try Run.checked("openssl", ["x509", "-in", world.peer.path("alice.pem"), "-noout", "-fingerprint", "-sha256"]).output
            .split(separator: "=")[1].filter { $0 != ":" && $0 != "\n" }.lowercased()
        #expect(signet.output.contains(String(expected.prefix(16))))
        let script = TestPaths.repository.appendingPathComponent("Tests/thunderbird/tb_ldap.py").path
        let result = try Run.command("timeout", ["--kill-after=10", "180", "python3", script, "--ldap-uri",
                                                  "ldap://127.0.0.1:\(world.ldapPort)/\(DirectoryWorld.base)", "--pki", world.dir,
                                                  "--email", "alice@example.org", "--expect-sha256", expected], timeout: 200)
        #expect(result.status == 0, "\(result.output)\n\(result.errors)")
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(log.contains("filter=\"(mail=alice@example.org)\""), "Thunderbird's search did not reach slapd")
    }
}
