import ArgumentParser
@testable import SignetCLI
import Testing

@Suite("The mail commands' quick argument reading makes what ArgumentParser makes")
struct QuickArgumentsTests {
    /// Every property of the command, as `dump` shows it (an option ArgumentParser's way
    /// would set but the quick way forgot shows as an unset definition, and differs).
    static func described(_ command: ParsableCommand) -> String {
        var text = ""
        dump(command, to: &text)
        return text
    }

    static let quickForms: [[String]] = [
        ["sign"],
        ["sign", "--in", "m.txt", "-o", "out.eml"],
        ["sign", "--quiet", "--in", "/tmp/f", "--signature-only", "--digest", "sha384"],
        ["sign", "-q", "--opaque", "--pss", "--cert", "827e0834", "--from", "bob@example.com", "--binary", "--code-fd", "3"],
        ["sign", "--in=m.txt", "--out=-", "--digest=SHA-512"],
        ["verify", "--signature", "s.p7s", "--content", "f.txt"],
        ["verify", "--in", "m.eml", "--out", "-"],
        ["verify", "--in", "m.eml", "--trust", "a.pem", "--trust", "b.pem", "--at", "2026-01-27", "--crl", "c.crl", "--fetch-crl", "--allow-sha1", "--json", "--code-fd", "4"],
        ["encrypt", "--quiet", "--der", "--in", "f", "alice.pem", "bob.pem"],
        ["encrypt", "--in", "f"],                       // no recipient: to your own certificate alone
        ["encrypt", "--to", "a@example.com", "--to", "b.pem", "--cipher", "aes256-gcm", "--oaep", "--self", "me.pem", "-o", "x"],
        ["decrypt", "--in", "f"],
        ["decrypt", "--in", "f", "-o", "out", "--trust", "ca.pem", "--code-fd", "0", "--allow-sha1"],
    ]

    @Test("Each plain form gives the same command both ways", arguments: quickForms)
    func sameCommand(arguments: [String]) throws {
        let quick = try #require(QuickArguments.command(arguments), "not read quickly: \(arguments)")
        let parsed = try SignetCommand.parseAsRoot(arguments)
        #expect(type(of: quick) == type(of: parsed))
        #expect(Self.described(quick) == Self.described(parsed))
        #expect(!Self.described(quick).contains("definition"))
    }

    static let otherForms: [[String]] = [
        ["sign", "--help"],
        ["sign", "-h"],
        ["sign", "--in", "a", "--in", "b"],            // repeated: ArgumentParser decides
        ["sign", "--opaque", "--opaque"],
        ["sign", "--in"],                               // missing value: ArgumentParser's message
        ["sign", "--in", "--opaque"],                   // a value that looks like an option
        ["sign", "--code-fd", "three"],                 // not a number
        ["sign", "-qo", "out"],                         // combined short options
        ["sign", "stray"],                              // sign takes no bare arguments
        ["sign", "--unknown"],
        ["sign", "--opaque=yes"],
        ["sign", "--digest", "sha1"],                   // does not validate: ArgumentParser reports it with the usage line
        ["verify", "--signature", "s.p7s"],
        ["encrypt", "--cipher", "des"],               // does not validate
        ["encrypt", "--", "-odd.pem"],
        ["verify", "--version"],
        ["status"],
        ["cert", "list"],
        [],
    ]

    @Test("Anything else is left to ArgumentParser", arguments: otherForms)
    func leftToArgumentParser(arguments: [String]) {
        #expect(QuickArguments.command(arguments) == nil)
    }
}
