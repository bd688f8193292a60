from hyac_agent.main import run

run()
