import Foundation

/// The `openssl` command-line tool as an independent peer that checks Signet's output.
public struct OpenSSLPeer {
    public let directory: URL

    public init() throws { directory = try TestPaths.temporaryDirectory("signet-openssl") }

    /// Writes `bytes` to a file in the peer's directory and returns its path.
    public func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    public func file(_ name: String, text: String) throws -> String { try file(name, Array(text.utf8)) }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    public func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: directory.appendingPathComponent(name))) }

    /// Runs `openssl` with `arguments`; returns the result whatever the status.
    @discardableResult
    public func run(_ arguments: [String], stdin: Data? = nil) throws -> Run.Result {
        try Run.command("openssl", arguments, stdin: stdin)
    }

    /// Verifies `signature` over `message` with the PEM public key, using `digest` and extra `-sigopt`s.
    public func verify(publicKeyPEM: String, message: [UInt8], signature: [UInt8], digest: String = "sha256", options: [String] = []) throws -> Bool {
        let key = try file("pub-\(UUID().uuidString.prefix(6)).pem", text: publicKeyPEM)
        let messagePath = try file("msg-\(UUID().uuidString.prefix(6))", message)
        let signaturePath = try file("sig-\(UUID().uuidString.prefix(6))", signature)
        var arguments = ["dgst", "-\(digest)", "-verify", key, "-signature", signaturePath]
        for option in options { arguments += ["-sigopt", option] }
        arguments.append(messagePath)
        let result = try run(arguments)
        return result.status == 0 && result.output.contains("Verified OK")
    }
}
