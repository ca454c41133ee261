import SignetCLI

SignetCommand.main()
