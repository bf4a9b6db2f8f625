"""The office tree under everything: who sees which cases, filing at a window, the public lists of API.md."""
from __future__ import annotations


def seen(world, who: str) -> set[str]:
    return {item["tracking_no"] for item in world.get(who, "/api/v1/staff/tickets?per_page=100").get_json()["items"]}


def test_each_office_sees_its_subtree_and_acts_only_on_its_own(network):
    world = network.world
    township, county, city, sibling = network.file("t11"), network.file("c1"), network.file(), network.file("c2")
    assert network.office_of(township) == "t11" and network.office_of(city) == "root"
    assert seen(world, "office") == seen(world, "admin") == {township, county, city, sibling}
    assert seen(world, "office_c1") == seen(world, "leader_c1") == {township, county}
    assert seen(world, "office_t11") == {township} and seen(world, "office_t12") == set()
    assert seen(world, "office_c2") == {sibling}
    for who, case in (("office_c1", sibling), ("office_t11", county), ("office_c2", township)):
        assert world.get(who, f"/api/v1/staff/tickets/{case}").status_code == 404
        world.act(who, case, "remind", expect=404)
    # above the owner: only 上级督办 (remind, note); the owner acts
    world.act("office_c1", township, "accept", expect=403)
    world.act("office", township, "accept", expect=403)
    assert world.ticket("office_c1", township)["allowed_actions"] == ["remind", "note"]
    world.act("supervisor_c1", township, "remind")
    world.act("office_c1", township, "note", content="请青石镇抓紧处理。")
    world.act("office_t11", township, "accept")
    world.act("admin", county, "accept")  # admins act anywhere


def test_the_list_filter_takes_a_window_within_what_the_caller_sees(network):
    world = network.world
    township, county, sibling = network.file("t11"), network.file("c1"), network.file("c2")
    assert {i["tracking_no"] for i in world.get("office", "/api/v1/staff/tickets?office_code=c1").get_json()["items"]} \
        == {township, county}
    assert world.get("office_c1", "/api/v1/staff/tickets?office_code=c2").get_json()["items"] == []
    bad = world.get("office", "/api/v1/staff/tickets?office_code=nowhere")
    assert bad.status_code == 422 and "office_code" in bad.get_json()["error"]["fields"]
    item = world.get("office", "/api/v1/staff/tickets?office_code=t11").get_json()["items"][0]
    assert (item["office_code"], item["office_name"]) == ("t11", "青石镇便民服务中心")
    assert sibling not in seen(world, "office_c1")


def test_public_office_list_filing_and_transfer_departments(network):
    world, client = network.world, network.world.client
    listed = client.get("/api/v1/offices").get_json()
    assert listed[0] == {"code": "root", "name": "办不成事反映窗口", "level": "city", "parent_code": None}
    assert {(o["code"], o["parent_code"]) for o in listed} >= {("c1", "root"), ("t11", "c1"), ("t21", "c2")}
    response = client.post("/api/v1/tickets", json={"name": "张三", "phone": "13800138000", "problem_type": "other",
                                                    "description": "营业执照变更办了一个月", "office_code": "nowhere"})
    assert response.status_code == 422 and "office_code" in response.get_json()["error"]["fields"]
    codes = {d["code"] for d in client.get("/api/v1/departments?office_code=t11").get_json()}
    assert codes == {"A", "B", "C", "C1"}  # its county's and the city's, never a sibling county's
    assert client.get("/api/v1/departments?office_code=nowhere").status_code == 422
    assert {d["code"] for d in client.get("/api/v1/departments").get_json()} == {"A", "B", "C", "C1", "C2"}
    filed = world.file(office_code="t21")
    public = client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}").get_json()
    assert public["office_name"] == "红岩乡便民服务中心"


def test_a_department_handler_sees_its_cases_whichever_window_sent_them(network):
    world = network.world
    county = network.file("c1")
    world.act("office_c1", county, "accept")
    world.act("office_c1", county, "transfer", department_id=world.departments["A"])  # a city department
    assert county in seen(world, "dept_a") and county not in seen(world, "dept_c1")
    assert world.get("dept_c1", f"/api/v1/staff/tickets/{county}").status_code == 404
