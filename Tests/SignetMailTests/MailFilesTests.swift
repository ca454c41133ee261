import Foundation
import Glibc
import SignetMail
import SignetTestSupport
import Testing

/// `MailInput` and `MailOutput`, how the mail commands read a message and write their result: a bound on what is
/// read, and an output file that appears only when committed.
@Suite("Mail files")
struct MailFilesTests {
    @Test("A file over the limit is refused with the limit named; one within it is read whole")
    func inputLimit() throws {
        let directory = try TestPaths.temporaryDirectory("signet-mail-files")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.path + "/message"
        try Data(repeating: 0x41, count: (1 << 20) + 1).write(to: URL(fileURLWithPath: path))
        #expect(try MailInput.read(path, limit: 2 << 20).count == (1 << 20) + 1)
        #expect { try MailInput.read(path, limit: 1 << 20) } throws: { "\($0)".contains("larger than 1 MiB") }
    }

    @Test("Output goes to a temporary file beside the destination: committed it replaces the destination, discarded it leaves nothing")
    func outputCommitOrNothing() throws {
        let directory = try TestPaths.temporaryDirectory("signet-mail-files")
        defer { try? FileManager.default.removeItem(at: directory) }
        let destination = directory.path + "/out.eml"
        try "old".write(toFile: destination, atomically: true, encoding: .utf8)
        let discarded = try MailOutput(destination, mode: 0o600)
        _ = write(discarded.fd, "new", 3)
        discarded.discard()
        #expect(try String(contentsOfFile: destination, encoding: .utf8) == "old")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.eml"])
        let committed = try MailOutput(destination, mode: 0o600)
        _ = write(committed.fd, "new", 3)
        #expect(FileView(fd: committed.fd).contents() == Array("new".utf8))
        try committed.commit()
        #expect(try String(contentsOfFile: destination, encoding: .utf8) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.eml"])
    }
}
