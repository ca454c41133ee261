#if canImport(Glibc)
import Glibc
#endif
import SignetAgentClient

/// Whether the agent has somewhere to ask this host program's user for a code: a screen (`DISPLAY`,
/// `WAYLAND_DISPLAY`) or a terminal, as `CallerEnvironment` sends them with each connection.
///
/// The token advertises `CKF_PROTECTED_AUTHENTICATION_PATH` only when it has. Firefox, seeing that flag on a
/// locked token, logs in (`C_Login(NULL)`) in the background and opens a modal "authenticate on the device"
/// dialog that listens for the login's end only once the dialog is parsed; a refusal that comes before then
/// ("nowhere to ask", at once) is lost and the page never finishes loading (issue 28, item 6). Without the
/// flag, NSS asks the program's own password callback, which in a program with no screen answers at once,
/// and the login fails with an error page instead of a wait. The check is the cheap part of the agent's
/// (`PromptPlaces` in SignetAgentCore): a local X display needs its socket, a Wayland one its socket.
enum PromptPlace {
    /// Read once: a program's screen and terminal do not change while it runs.
    static let hostCanPrompt: Bool = {
        let entries = Dictionary(CallerEnvironment.current(), uniquingKeysWith: { first, _ in first })
        if entries["tty"] != nil { return true }
        if let wayland = entries["WAYLAND_DISPLAY"] {
            let runtime = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) } ?? ""
            if isSocket(wayland.hasPrefix("/") ? wayland : runtime + "/" + wayland) { return true }
        }
        if let display = entries["DISPLAY"] { return displayMayWork(display) }
        return false
    }()

    /// A local display (`:N`, `unix:N`, `:N.S`) works only with its socket `/tmp/.X11-unix/XN`; a display
    /// on another host (ssh's forwarding, `host:N`) is taken as it is, as the agent checks it in full.
    static func displayMayWork(_ display: String) -> Bool {
        guard let colon = display.lastIndex(of: ":") else { return false }
        let host = display[..<colon]
        guard host.isEmpty || host == "unix" else { return true }
        let number = display[display.index(after: colon)...].prefix { $0.isNumber }
        return !number.isEmpty && isSocket("/tmp/.X11-unix/X\(number)")
    }

    static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
    }
}
