/// Signet's version, the one every part shows: `signet version`, `signet-agent --version`, the agent's
/// hello, the PKCS#11 module's `CK_INFO.libraryVersion` and the Debian package (`scripts/package`).
///
/// The source of truth is the `VERSION` file at the top of the tree. SwiftPM cannot read a file at build
/// time without a build-tool plugin, so the number is written here as well and `VersionFileTests`
/// fails when the two differ: change both together.
public enum SignetVersion {
    /// The version as text, "major.minor.patch".
    public static let string = "0.3.0"

    /// The major number, for the module's two-byte `CK_VERSION`.
    public static var major: UInt8 { component(0) }

    /// The minor number, for the module's two-byte `CK_VERSION` (the patch number has no place there).
    public static var minor: UInt8 { component(1) }

    private static func component(_ index: Int) -> UInt8 {
        let parts = string.split(separator: ".")
        guard index < parts.count, let value = UInt8(parts[index]) else { return 0 }
        return value
    }
}
