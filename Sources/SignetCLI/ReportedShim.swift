import SignetMail

extension SignetError {
    /// The error itself. Errors are printed once, by `SignetCommand.exit(reporting:)`; this stays only
    /// while the agent branch of issue 16 still calls it in its files, and goes when that lands.
    func reported() -> SignetError { self }
}
