import Foundation
import SignetCore
import SignetTestSupport
import Testing
@testable import SignetAgentCore

/// Issue 24 #6: the session bus a client sends is used only when it is a `unix:path=` socket of the client's uid.
@Suite("Notifications: which session bus address a client may name")
struct SessionBusTests {
    @Test("Only one unix:path= address is taken: TCP, abstract, dir=, tmpdir=, runtime=, unixexec: and lists are refused")
    func forms() throws {
        #expect(try SessionBus.socketPath("unix:path=/run/user/1000/bus").get() == "/run/user/1000/bus")
        #expect(try SessionBus.socketPath("unix:path=/tmp/a%20b,guid=0123abcd").get() == "/tmp/a b")
        for address in ["tcp:host=127.0.0.1,port=41110", "nonce-tcp:host=localhost,port=41110,noncefile=/tmp/n", "unix:abstract=/tmp/dbus-x",
                        "unix:dir=/tmp", "unix:tmpdir=/tmp", "unix:runtime=yes", "unixexec:path=/bin/sh", "autolaunch:",
                        "unix:path=/run/user/1000/bus;tcp:host=127.0.0.1,port=41110", "unix:path=relative", "unix:path=/a,path=/b",
                        "unix:path=/bad%zz", "launchd:env=X", "garbage"] {
            #expect(SessionBus.problem(address, uid: getuid()) != nil, "\(address)")
        }
    }

    @Test("A unix:path= socket is used only when it exists, is a socket, and belongs to the caller, in a directory no one else can change")
    func ownership() throws {
        let directory = try TestPaths.temporaryDirectory("signet-bus-check")
        let path = directory.appendingPathComponent("bus").path
        let listener: Int32
        do { listener = try UnixSocket.listen(path) } catch { throw TestFailure("listen: \(error)") }
        defer { close(listener) }
        #expect(SessionBus.problem("unix:path=\(path)", uid: getuid()) == nil)
        #expect(SessionBus.problem("unix:path=\(path)", uid: 65534)?.contains("belongs to uid \(getuid()), not the caller's 65534") == true)
        #expect(SessionBus.problem("unix:path=\(directory.path)/absent", uid: getuid())?.contains("does not exist") == true)
        let link = directory.appendingPathComponent("link").path
        try #require(symlink(path, link) == 0)
        #expect(SessionBus.problem("unix:path=\(link)", uid: getuid())?.contains("is not a socket") == true, "lstat: a link is not followed")
        chmod(directory.path, 0o777)
        #expect(SessionBus.problem("unix:path=\(path)", uid: getuid())?.contains("is writable by others") == true)
        #expect(SessionBus.choose(client: "unix:path=\(path)", uid: getuid(), own: "unix:path=/own") == "unix:path=/own")
        #expect(SessionBus.choose(client: "tcp:host=127.0.0.1,port=41110", uid: getuid(), own: nil) == nil)
    }

    @Test("clientEnvironment drops a D-Bus address that is not the caller's socket, with the reason")
    func clientEnvironment() {
        let environment = ClientEnvironment(entries: [("DBUS_SESSION_BUS_ADDRESS", "tcp:host=127.0.0.1,port=41110")], uid: getuid())
        #expect(environment.dbusAddress == nil)
        #expect(environment.refused.first?.contains("tcp: transport") == true, "\(environment.refused)")
    }
}
