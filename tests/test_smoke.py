def test_file_and_look_up(world):
    filed = world.file()
    response = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "submitted"
