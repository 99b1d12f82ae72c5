"""A labelled retrieval set written for AICO (public domain): ten short documents about a
fictional coastal town and 55 questions, each with a phrase that only the chunk holding its
answer contains. The documents overlap in vocabulary on purpose (opening hours, prices, names
and dates recur), so a retriever must tell similar sections apart; about half the questions
paraphrase (few shared words), the rest reuse the document's terms."""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "Harbor Lighthouse": """# History
The Harbor Lighthouse was built in 1874 from granite quarried on Pell Island. It replaced a
wooden beacon that burned down in the storm of 1869.

# The lamp
Its lamp is visible for twenty-two nautical miles on a clear night. The original Fresnel lens
was made in Paris and weighs nearly two tonnes.

# Visiting
The lighthouse museum opens at nine in the morning and closes at five in the afternoon. It is
closed every Tuesday for cleaning. Tickets cost seven euros for adults.

# Keepers
The last resident keeper, Marguerite Olsen, retired in 1961 after thirty years of service. Since
then the light has been automated and monitored from the harbour office.

# Climbing the tower
There are 153 steps to the lantern room. Children under eight may not climb the tower.
""",
    "Town Library": """# Opening hours
The Pellhaven Town Library is open from ten until seven on weekdays and from ten until two on
Saturdays. It is closed on Sundays.

# Borrowing
Members may borrow up to twelve items at once for three weeks. Late returns cost twenty cents
per item per day.

# Membership
Membership is free for residents; visitors pay fifteen euros a year. Bring proof of address to
the front desk.

# Local archive
The archive room holds ship logs dating back to 1790. Researchers must book the reading table a
week in advance.

# Children's corner
Story time for toddlers is held on Wednesday mornings at half past ten.
""",
    "Ferry Service": """# Routes
The ferry sails from Pellhaven to Gull Island and back. The crossing takes forty minutes in calm
weather.

# Timetable
In summer the first ferry leaves at 6:45 and the last returns at 21:30. In winter there are only
four crossings a day.

# Fares
A return ticket costs eleven euros for foot passengers and thirty-four euros for a car with its
driver. Bicycles travel free.

# Cancellations
Sailings are cancelled when the wind exceeds force eight. Cancellations are announced on the
harbour radio channel 16.

# Pets
Dogs are welcome on the open deck if kept on a lead; cats must travel in a basket.
""",
    "Fish Market": """# Market days
The fish market is held on the quay every Thursday and Saturday from six until noon.

# What is sold
Mackerel, sea bass and brown crab are the local catch. Oysters come from the farm at Reed Creek.

# Auction
The wholesale auction starts at half past five; only registered traders may bid.

# Prices
Prices are chalked on boards at each stall; a kilo of mackerel usually costs about eight euros.

# Cleaning service
Stallholders will gut and fillet your fish for a fee of one euro per fish.
""",
    "Pellhaven Festival": """# Dates
The Pellhaven Sea Festival takes place on the last weekend of July every year.

# Regatta
The rowing regatta starts at the harbour mouth and finishes at the lighthouse; the winning crew
receives the Silver Oar.

# Music
Folk bands play on the bandstand each evening until midnight. The headline act is announced in May.

# Food
Local bakers sell saffron buns and the fishermen's choir runs a chowder stall to raise money for
the lifeboat.

# Fireworks
The festival closes with fireworks over the bay at ten o'clock on Sunday night.
""",
    "Lifeboat Station": """# Crew
The lifeboat is crewed by twenty-four volunteers who carry pagers day and night.

# Boat
The station's boat, the Ellen Mary, is a Shannon-class lifeboat that can reach twenty-five knots.

# Callouts
Last year the crew launched sixty-three times and rescued ninety-one people.

# Open day
The station holds an open day on the first Sunday of June, when visitors may board the boat.

# Donations
The station relies entirely on donations; a collection box stands by the slipway door.
""",
    "Coastal Path": """# Route
The coastal path runs eighteen kilometres from Pellhaven to the village of Tresk along the cliffs.

# Difficulty
The walk is rated moderate; allow six hours, including the steep climb at Raven Point.

# Wildlife
Puffins nest on the cliffs below Raven Point from April to July; seals haul out on Tresk beach.

# Safety
Keep to the marked path: the cliff edge is unstable after heavy rain. Mobile signal is poor
between the two villages.

# Getting back
A bus returns from Tresk to Pellhaven every two hours; the last one leaves at 18:10.
""",
    "Pellhaven School": """# Classes
Pellhaven Primary School teaches one hundred and forty pupils in six classes.

# Term dates
The autumn term begins on the first Monday of September and ends before Christmas.

# Uniform
Pupils wear a navy jumper with the school's anchor badge.

# Lunches
Hot lunches cost two euros fifty and are cooked in the school kitchen each day.

# Sailing club
Older pupils may join the sailing club, which meets on Friday afternoons in the summer term.
""",
    "Harbour Rules": """# Mooring
Visiting yachts moor on the pontoon by the fuel berth; the overnight fee is two euros per metre
of boat length.

# Speed
The speed limit inside the harbour walls is four knots.

# Fuel
Diesel is sold at the fuel berth from eight until six; payment is by card only.

# Harbour master
The harbour master, Tomas Reyes, answers on radio channel 12 and at the office by the slipway.

# Waste
Oil and bilge water must be taken to the collection tank behind the boatyard.
""",
    "Town Council": """# Meetings
The town council meets on the second Monday of every month at seven in the evening in the
Assembly Rooms.

# Mayor
The current mayor, Agnes Whitlow, was elected in 2022 and serves a four-year term.

# Parking permits
Residents apply for a parking permit online; a permit costs forty euros a year.

# Bins
Household waste is collected on Mondays and recycling every other Friday.

# Planning
Planning applications are displayed in the library for twenty-one days before a decision.
""",
}

# (question, a phrase only the chunk with the answer contains)
QUESTIONS: list[tuple[str, str]] = [
    ("When was the lighthouse built?", "built in 1874"),
    ("What destroyed the old wooden beacon?", "storm of 1869"),
    ("How far away can you see the light?", "twenty-two nautical miles"),
    ("Which day is the lighthouse museum shut?", "closed every Tuesday"),
    ("Who was the final keeper to live at the lighthouse?", "Marguerite Olsen"),
    ("How many stairs lead up to the lantern room?", "153 steps"),
    ("Can a six-year-old climb the tower?", "Children under eight"),
    ("What time does the library close on Saturday?", "ten until two on"),
    ("How many books can I take out at once?", "twelve items"),
    ("What is the fine for returning books late?", "twenty cents"),
    ("Do visitors have to pay to join the library?", "fifteen euros a year"),
    ("Where can I read old ship logs?", "ship logs dating back to 1790"),
    ("When is story time for small children?", "Wednesday mornings"),
    ("How long is the boat trip to Gull Island?", "forty minutes"),
    ("When does the last summer ferry come back?", "21:30"),
    ("How much does it cost to take my car on the ferry?", "thirty-four euros"),
    ("Do I pay extra to bring my bike on the ferry?", "Bicycles travel free"),
    ("In what weather are sailings called off?", "force eight"),
    ("Can I bring my dog on the ferry?", "Dogs are welcome on the open deck"),
    ("Which days is the fish market open?", "every Thursday and Saturday"),
    ("Where do the oysters come from?", "Reed Creek"),
    ("What time does the fish auction begin?", "half past five"),
    ("How much is a kilo of mackerel?", "about eight euros"),
    ("Will someone fillet the fish I buy?", "one euro per fish"),
    ("When is the sea festival held?", "last weekend of July"),
    ("What prize does the winning rowing crew get?", "Silver Oar"),
    ("Until what time do the bands play at the festival?", "until midnight"),
    ("What can I eat at the festival?", "saffron buns"),
    ("When are the festival fireworks?", "ten o'clock on Sunday night"),
    ("How many volunteers crew the lifeboat?", "twenty-four volunteers"),
    ("What is the name of the lifeboat?", "Ellen Mary"),
    ("How fast can the lifeboat go?", "twenty-five knots"),
    ("How many people did the lifeboat rescue last year?", "ninety-one people"),
    ("When can the public go aboard the lifeboat?", "first Sunday of June"),
    ("How is the lifeboat station funded?", "relies entirely on donations"),
    ("How long is the cliff walk to Tresk?", "eighteen kilometres"),
    ("How many hours should I allow for the coastal walk?", "allow six hours"),
    ("Where can I see puffins?", "Puffins nest"),
    ("Is there phone reception on the coastal path?", "Mobile signal is poor"),
    ("When does the last bus leave Tresk?", "18:10"),
    ("How many children attend the primary school?", "one hundred and forty pupils"),
    ("When does the school year start?", "first Monday of September"),
    ("What do pupils wear to school?", "navy jumper"),
    ("How much is a school dinner?", "two euros fifty"),
    ("When does the school sailing club meet?", "Friday afternoons"),
    ("Where should a visiting yacht tie up?", "moor on the pontoon"),
    ("What is the speed limit in the harbour?", "four knots"),
    ("Can I pay cash for diesel at the harbour?", "card only"),
    ("What is the harbour master's name?", "Tomas Reyes"),
    ("Where do I dispose of bilge water?", "collection tank"),
    ("When does the town council meet?", "second Monday of every month"),
    ("Who is the mayor of Pellhaven?", "Agnes Whitlow"),
    ("How much does a residents' parking permit cost?", "forty euros a year"),
    ("Which day are the bins emptied?", "collected on Mondays"),
    ("How long are planning applications on display?", "twenty-one days"),
]
