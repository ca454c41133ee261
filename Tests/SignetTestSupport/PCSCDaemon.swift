import Foundation

/// pcscd with the vpcd reader, run through `scripts/test-pcscd` — the same
/// script `.ci/run` and the demo use. Only one pcscd can run on a machine, so
/// tests that use it are in one serialized suite.
public enum PCSCDaemon {
    public static let vpcdPort: UInt16 = 35963
    public static let readerName = "Signet Virtual Reader 00 00"

    static var script: String { TestPaths.repository.appendingPathComponent("scripts/test-pcscd").path }

    /// Starts pcscd unless the script's instance is already running.
    public static func start(readers: Bool = true) throws {
        try Run.checked("/bin/bash", [script, "start"] + (readers ? [] : ["--no-readers"]))
    }

    /// Stops pcscd gracefully.
    public static func stop() throws { try Run.checked("/bin/bash", [script, "stop"]) }

    /// Kills pcscd with SIGKILL, as a crash would.
    public static func kill() throws { try Run.checked("/bin/bash", [script, "kill"]) }

    /// Whether pcscd is running.
    public static var isRunning: Bool { (try? Run.command("/bin/bash", [script, "status"]).status) == 0 }
}
