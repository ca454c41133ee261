import SignetCLI

SignetCommand.start()
