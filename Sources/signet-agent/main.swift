import SignetAgentCore

AgentMain.run()
