#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// A failure of setup as a whole (no module to register, a second setup running), as a sentence for the user.
public struct SetupError: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Where Signet's PKCS#11 front end is.
public enum FrontEndModule {
    public static let fileName = "libsignet-pkcs11.so"
    /// Where a Debian package installs it: p11-kit's module directory, `/usr/lib/<multiarch>/pkcs11/` (p11-kit's
    /// `p11_module_path`), or nil when the multiarch directory cannot be told.
    static var systemPath: String? { p11KitModuleDirectory().map { $0 + "/" + fileName } }

    /// p11-kit's module directory on this system: `pkcs11/` in the multiarch library directory, which is the one
    /// holding the C library this process runs with (`/usr/lib/x86_64-linux-gnu`, `/usr/lib/aarch64-linux-gnu`, …,
    /// read from `/proc/self/maps`; `/lib/…` is taken as `/usr/lib/…`, as on merged-/usr systems). Debian builds
    /// p11-kit with this path as `p11_module_path`. Nil when libc is not in a multiarch directory.
    static func p11KitModuleDirectory(maps: String? = FileIO.readText("/proc/self/maps", limit: 1 << 22)) -> String? {
        guard let maps else { return nil }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = line[slash...]
            guard path.hasSuffix("/libc.so.6") else { continue }
            let components = path.split(separator: "/")
            // …/lib/<triple>/libc.so.6, the triple with at least two dashes (x86_64-linux-gnu, arm-linux-gnueabihf).
            guard components.count >= 3, components[components.count - 3] == "lib",
                  components[components.count - 2].filter({ $0 == "-" }).count >= 2 else { return nil }
            return "/usr/lib/" + components[components.count - 2] + "/pkcs11"
        }
        return nil
    }

    /// The module's absolute path: `$SIGNET_FRONTEND_MODULE` when set (and then only it), else the first that
    /// exists of `libsignet-pkcs11.so` beside the running `signet`, `../lib/signet/` beside it, `systemPath`
    /// (p11-kit's module directory).
    /// - Throws: `SetupError` naming the places looked at when there is none.
    public static func locate(environment: [String: String] = ProcessEnvironment.all()) throws(SetupError) -> String {
        if let explicit = environment["SIGNET_FRONTEND_MODULE"], !explicit.isEmpty {
            let path = absolute(explicit)
            guard isFile(path) else {
                throw SetupError("SIGNET_FRONTEND_MODULE is \(path), which is not a file. Point it at libsignet-pkcs11.so, or unset it.")
            }
            return path
        }
        var candidates: [String] = []
        if let program = executablePath() {
            let directory = String(program[..<(program.lastIndex(of: "/") ?? program.startIndex)])
            let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
            candidates += [directory + "/" + fileName, parent + "/lib/signet/" + fileName]
        }
        if let systemPath { candidates.append(systemPath) }
        guard let found = candidates.first(where: isFile) else {
            throw SetupError("Signet's PKCS#11 module (\(fileName)) is not installed: looked for \(candidates.joined(separator: ", ")). "
                + "Build it (`swift build --product signet-pkcs11`) or install it, or set SIGNET_FRONTEND_MODULE to its path.")
        }
        return found
    }

    private static func executablePath() -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBytes { readlink("/proc/self/exe", $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1) }
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }

    private static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        guard let directory = getcwd(nil, 0) else { return path }
        defer { free(directory) }
        return String(cString: directory) + "/" + path
    }

    private static func isFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }
}
