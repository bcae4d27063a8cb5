from alertsvc import create_app

app = create_app()
