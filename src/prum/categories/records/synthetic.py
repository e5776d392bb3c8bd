"""Synthetic people and a corruption model, for tests and benchmarks (never real data).

**People** (:class:`PersonGenerator`): 13 countries, names in their own script
(Greek; Bulgarian, Russian and Ukrainian Cyrillic; Latin with diacritics), the
female surname forms of Slavic languages and Greek, Spanish double surnames, a
second first name for 30%, an alias for 10%, dates of birth 1946-2005 (5% year only,
5% year and month), places of birth from the country's towns, nationality mostly the
country of birth. Surnames come 35% of the time from a list of common ones and
otherwise from a long tail of stem + ending combinations; first names are drawn with
Zipf-like weights (rank r has weight 1/(r+3)). So common names are common and
namesakes occur, as in real registers. Deterministic for a seed.

**Corruption model** (:func:`corrupt`): what a query written in another country
looks like. Each variant applies one or two of these, drawn with the weights below,
and is labelled with them:

- ``transliteration``: Cyrillic and Greek names (and places) written in Latin
  letters by another scheme (English, German, French, Polish, scientific with
  diacritics; Greek ELOT or phonetic); Latin names with diacritics lose them or
  are spelt the German way (ü -> ue);
- ``typo``: one edit in one name word (a letter substituted, inserted, deleted or
  two swapped);
- ``swapped_order``: surnames given as first names and the reverse;
- ``missing_middle_name``: only the first of several first names;
- ``day_month_swap``: day and month exchanged (only where both are <= 12);
- ``partial_date``: only the year, or the year and month;
- ``year_off_by_one``;
- ``missing_attributes``: no place, country of birth or nationality;
- ``case_punctuation``: upper case, hyphens.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from dataclasses import dataclass, replace

from prum.categories.records.person import BirthDate, Name, Person

# --- names ------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


# country: (surnames, male first names, female first names, towns, script)
_RU_STEMS = _words(
    "Иван Смирн Кузнец Попов Васил Петр Соколов Михайл Новик Федор Морозов Волк Алексе "
    "Лебед Семен Егор Павл Козл Степан Никол Орл Андре Макар Никит Захар Зайц Соловь "
    "Борис Яковл Григорь Роман Воробь Сергe Фрол Александр Дмитри Корол Гусев Киселев "
    "Ильин Максим Поляк Сорокин Виноград Ковал Белов Медвед Антон Тарас Жук Баран Филипп "
    "Комар Щерб Беляев Тихон Хромов Чернов Шилов Цветков Юдин Яшин"
)
_SLAVIC_MALE_RU = _words(
    "Александр Дмитрий Максим Сергей Андрей Алексей Артём Илья Кирилл Михаил Никита Матвей "
    "Роман Егор Арсений Иван Денис Евгений Даниил Тимофей Владислав Игорь Владимир Павел "
    "Юрий Олег Виктор Николай Фёдор Григорий"
)
_SLAVIC_FEMALE_RU = _words(
    "Анастасия Мария Дарья Анна Елизавета Полина Виктория Екатерина Софья Александра "
    "Ксения Юлия Вероника Алина Арина Ольга Татьяна Наталья Ирина Елена Светлана Людмила "
    "Галина Надежда Валентина Яна Кристина Алёна Евгения Марина"
)
_BG_STEMS = _words(
    "Иван Георги Димитр Петр Никол Христ Стоян Тодор Атанас Илиев Василев Ангел Колев "
    "Йорданов Маринов Стефан Попов Костадин Добрев Цветан Кирил Симеон Радев Михайл "
    "Янков Тонев Живков Пеев Желязков Славов Борис Христозов Начев Чакъров Шишков"
)
_BG_MALE = _words(
    "Георги Иван Димитър Николай Петър Христо Йордан Стефан Васил Александър Тодор "
    "Стоян Атанас Кирил Борислав Красимир Пламен Цветан Любомир Явор Мартин Емил Калоян "
    "Радослав Веселин"
)
_BG_FEMALE = _words(
    "Мария Иванка Елена Йорданка Пенка Даниела Радка Цветанка Снежана Виолета Галина "
    "Десислава Ивана Теодора Гергана Калина Радостина Живка Невена Ралица Яна Милена "
    "Албена Петя Стефка"
)
_UA_SURNAMES = _words(
    "Шевченко Коваленко Бондаренко Ткаченко Кравченко Олійник Шевчук Коваль Поліщук "
    "Бондар Ткачук Марченко Лисенко Руденко Савченко Петренко Клименко Павленко Кравчук "
    "Кузьменко Мельник Гончаренко Левченко Харченко Швець Сидоренко Остапенко Яковенко "
    "Гнатюк Ющенко Зінченко Єрмоленко Тимошенко Приходько Іваненко Дорошенко"
)
_UA_MALE = _words(
    "Олександр Андрій Сергій Володимир Дмитро Юрій Олег Іван Михайло Максим Василь "
    "Богдан Тарас Микола Ярослав Віктор Євген Петро Степан Григорій Остап Роман Ігор "
    "Назар Мирослав"
)
_UA_FEMALE = _words(
    "Олена Наталія Тетяна Ірина Оксана Юлія Світлана Ольга Марія Анна Катерина Людмила "
    "Галина Вікторія Софія Надія Ганна Христина Леся Зоряна Соломія Дарина Євгенія "
    "Ярослава Іванна"
)
_GR_SURNAMES = _words(
    "Παπαδόπουλος Παπαγεωργίου Οικονόμου Γεωργίου Παπαδάκης Βασιλείου Νικολάου "
    "Καραγιάννης Παπανικολάου Δημητρίου Ιωάννου Μακρής Αθανασίου Χριστοδούλου Κωνσταντίνου "
    "Αντωνίου Πετρόπουλος Αλεξίου Μιχαηλίδης Θεοδωρόπουλος Σταυρόπουλος Λαμπράκης "
    "Ευαγγέλου Γεωργιάδης Χατζηδάκης Κυριακίδης Ζαχαρίου Ψαρράς Φωτόπουλος Τσακίρης"
)
_GR_MALE = _words(
    "Γιώργος Δημήτρης Κωνσταντίνος Γιάννης Νίκος Παναγιώτης Βασίλης Χρήστος Αθανάσιος "
    "Μιχάλης Ευάγγελος Σπύρος Αντώνης Θεόδωρος Ηλίας Στέλιος Φώτης Θανάσης Ανδρέας "
    "Σταύρος Χαράλαμπος Πέτρος Αλέξανδρος Φίλιππος Ευθύμιος"
)
_GR_FEMALE = _words(
    "Μαρία Ελένη Αικατερίνη Βασιλική Σοφία Αγγελική Γεωργία Δήμητρα Κωνσταντίνα "
    "Παρασκευή Χριστίνα Ευαγγελία Ιωάννα Αναστασία Ειρήνη Ευθυμία Θεοδώρα Ελευθερία "
    "Φωτεινή Χρυσούλα Ζωή Ξανθή Στυλιανή Αφροδίτη Ουρανία"
)

_LATIN: dict[str, tuple[str, str, str, str]] = {
    "DE": (
        "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer "
        "Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger "
        "Hofmann Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Köhler Jäger "
        "Günther Groß Vogel Frühling Weiß Böhm Kühn Fuchs Scholz Möller Keller Ziegler",
        "Lukas Leon Finn Jonas Paul Luis Maximilian Felix Elias Noah Jürgen Klaus Stefan "
        "Thomas Andreas Michael Wolfgang Günter Uwe Jörg Matthias Sebastian Tobias Florian",
        "Mia Emma Hannah Sofia Anna Lea Emilia Marie Lena Lina Jutta Ursula Sabine Petra "
        "Monika Claudia Birgit Käthe Jürgenine Anke Silke Heike Doris Brigitte Gisela",
        "Berlin Hamburg München Köln Frankfurt Stuttgart Düsseldorf Leipzig Dortmund Essen "
        "Bremen Dresden Hannover Nürnberg",
    ),
    "FR": (
        "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon "
        "Michel Lefèbvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont "
        "Lambert Fontaine Rousseau Vincent Müller Lefèvre Faure André Mercier Blanc Guérin "
        "Boyer Garnier Chevalier François Legrand Gauthier Garçon Perrin Robin Clément",
        "Gabriel Léo Raphaël Arthur Louis Jules Adam Lucas Hugo Noé Jean Pierre Michel "
        "Philippe Alain Jacques Bernard François Stéphane Frédéric Thierry Sébastien",
        "Jade Louise Emma Alice Ambre Lina Rose Chloé Léa Mila Marie Nathalie Isabelle "
        "Sylvie Catherine Françoise Hélène Valérie Christine Céline Aurélie Élodie",
        "Paris Marseille Lyon Toulouse Nice Nantes Strasbourg Montpellier Bordeaux Lille "
        "Rennes Reims Saint-Étienne Havre",
    ),
    "IT": (
        "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno "
        "Gallo Conti De Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana "
        "Santoro Mariani Rinaldi Caruso Ferrara Galli Martini Leone Longo Gentile Martinelli "
        "Vitale Lombardo Serra Coppola De Santis D'Angelo Marchetti Parisi Villa Conte",
        "Leonardo Francesco Alessandro Lorenzo Mattia Andrea Gabriele Riccardo Tommaso "
        "Giuseppe Giovanni Antonio Mario Luigi Salvatore Paolo Niccolò Nicolò Fabio Davide",
        "Sofia Giulia Aurora Alice Ginevra Emma Giorgia Greta Beatrice Anna Maria Rosa "
        "Angela Giovanna Lucia Francesca Chiara Federica Elisa Martina Valentina",
        "Roma Milano Napoli Torino Palermo Genova Bologna Firenze Bari Catania Venezia "
        "Verona Messina Padova",
    ),
    "ES": (
        "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín "
        "Jiménez Ruiz Hernández Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro "
        "Torres Domínguez Vázquez Ramos Gil Ramírez Serrano Blanco Molina Morales Suárez "
        "Ortega Delgado Castro Ortiz Rubio Marín Sanz Núñez Iglesias Medina Garrido",
        "Antonio José Manuel Francisco David Juan Javier Daniel Carlos Jesús Alejandro "
        "Miguel Rafael Pablo Pedro Ángel Sergio Fernando Jorge Luis Álvaro Adrián Iván",
        "María Carmen Ana Isabel Laura Cristina Marta Lucía Pilar Dolores Josefa Paula "
        "Elena Raquel Sara Manuela Rosario Mercedes Teresa Nuria Inés Begoña Concepción",
        "Madrid Barcelona Valencia Sevilla Zaragoza Málaga Murcia Palma Bilbao Alicante "
        "Córdoba Valladolid Vigo Gijón",
    ),
    "PL": (
        "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński "
        "Szymański Woźniak Dąbrowski Kozłowski Jankowski Mazur Wojciechowski Kwiatkowski "
        "Krawczyk Kaczmarek Piotrowski Grabowski Zając Pawłowski Michalski Król Wieczorek "
        "Jabłoński Wróbel Nowakowski Majewski Olszewski Stępień Malinowski Jaworski Adamczyk "
        "Dudek Nowicki Pawlak Górski Witkowski Walczak Sikora Baran Rutkowski Michalak",
        "Antoni Jan Aleksander Franciszek Jakub Szymon Filip Mikołaj Stanisław Wojciech "
        "Krzysztof Andrzej Piotr Tomasz Paweł Michał Marcin Grzegorz Łukasz Zbigniew "
        "Tadeusz Jerzy Przemysław Bartłomiej",
        "Zofia Zuzanna Hanna Julia Maja Lena Alicja Maria Oliwia Pola Anna Katarzyna "
        "Małgorzata Agnieszka Barbara Ewa Krystyna Elżbieta Magdalena Joanna Grażyna "
        "Jadwiga Danuta Bożena",
        "Warszawa Kraków Łódź Wrocław Poznań Gdańsk Szczecin Bydgoszcz Lublin Białystok "
        "Katowice Gdynia Częstochowa Radom",
    ),
    "CZ": (
        "Novák Svoboda Novotný Dvořák Černý Procházka Kučera Veselý Horák Němec Marek "
        "Pospíšil Pokorný Hájek Král Jelínek Růžička Beneš Fiala Sedláček Doležal Zeman "
        "Kolář Navrátil Čermák Vaněk Urban Blažek Kříž Kovář Bartoš Vlček Polák Musil "
        "Kopecký Šimek Konečný Malý Holub Štěpánek",
        "Jiří Jan Petr Josef Pavel Martin Tomáš Jaroslav Miroslav Zdeněk Václav Michal "
        "František Jakub Milan Karel Lukáš David Vojtěch Ondřej Matěj Radek Luboš",
        "Jana Marie Eva Hana Anna Lenka Kateřina Lucie Věra Alena Petra Veronika Jaroslava "
        "Tereza Martina Michaela Zdeňka Ludmila Jitka Helena Dagmar Božena Markéta",
        "Praha Brno Ostrava Plzeň Liberec Olomouc Budějovice Hradec Ústí"
        " Pardubice Zlín Havířov Kladno Most",
    ),
    "RO": (
        "Popescu Popa Pop Radu Dumitru Stan Stoica Gheorghe Matei Ciobanu Ionescu Rusu "
        "Mihai Constantin Munteanu Marin Lungu Dinu Diaconu Nistor Florea Ionită Tudor "
        "Moldovan Barbu Dobre Nedelcu Preda Cristea Stănescu Manole Căpraru Sârbu "
        "Ştefănescu Bălan Ţurcanu Voicu Neagu Enache Anghel",
        "Andrei Alexandru Ion Gheorghe Mihai Constantin Vasile Nicolae Ştefan Florin Dan "
        "Gabriel Adrian Cristian Marius Bogdan Ionuţ Răzvan Cătălin Sorin Lucian Ovidiu",
        "Maria Elena Ioana Andreea Mihaela Ana Cristina Alexandra Gabriela Daniela "
        "Georgiana Ştefania Alina Ramona Roxana Irina Simona Oana Larisa Bianca Anca",
        "Bucureşti Cluj-Napoca Timişoara Iaşi Constanţa Craiova Braşov Galaţi Ploieşti "
        "Oradea Brăila Arad Piteşti Sibiu",
    ),
    "HU": (
        "Nagy Kovács Tóth Szabó Horváth Varga Kiss Molnár Németh Farkas Balogh Papp Takács "
        "Juhász Lakatos Mészáros Oláh Simon Rácz Fekete Szilágyi Török Fehér Balázs Gál "
        "Kis Szűcs Kocsis Orsós Pintér Fodor Szalai Sipos Magyar Lukács Gulyás Bíró Király "
        "László Katona",
        "László István József János Zoltán Sándor Gábor Ferenc Attila Péter Tamás Zsolt "
        "Tibor András Csaba Imre Lajos György Balázs Miklós Bence Máté Levente Dániel",
        "Mária Erzsébet Katalin Ilona Éva Anna Zsuzsanna Margit Judit Ágnes Andrea Ildikó "
        "Erika Krisztina Irén Eszter Zsófia Viktória Gabriella Edit Anikó Dóra Réka Noémi",
        "Budapest Debrecen Szeged Miskolc Pécs Győr Nyíregyháza Kecskemét Székesfehérvár "
        "Szombathely Szolnok Tatabánya Kaposvár Érd",
    ),
    "NL": (
        "de Jong Jansen de Vries van den Berg van Dijk Bakker Janssen Visser Smit Meijer "
        "de Boer Mulder de Groot Bos Vos Peters Hendriks van Leeuwen Dekker Brouwer "
        "de Wit Dijkstra Smits de Graaf van der Meer van der Linden Kok Jacobs de Haan "
        "Vermeulen van den Heuvel van der Veen van den Broek de Bruijn de Bruin van der Heijden "
        "Schouten van Beek Willems van Vliet",
        "Daan Sem Lucas Levi Finn Milan Bram Luuk Thijs Jesse Jan Johannes Cornelis Hendrik "
        "Willem Pieter Gerrit Dirk Kees Joost Sjoerd Maarten Ruud",
        "Emma Julia Mila Tess Sophie Zoë Sara Nora Fleur Eva Maria Johanna Anna Cornelia "
        "Wilhelmina Elisabeth Hendrika Geertruida Ingrid Femke Marieke Sanne Anouk",
        "Amsterdam Rotterdam Utrecht Eindhoven Groningen Tilburg Almere Breda Haag "
        "Nijmegen Apeldoorn Haarlem Arnhem Enschede",
    ),
}

_TOWNS_CYRILLIC = {
    "BG": "София Пловдив Варна Бургас Русе Загора Плевен Сливен Добрич Шумен Перник "
    "Хасково Ямбол Пазарджик",
    "RU": "Москва Санкт-Петербург Новосибирск Екатеринбург Казань Новгород Челябинск "
    "Самара Омск Ростов-на-Дону Уфа Красноярск Воронеж Пермь",
    "UA": "Київ Харків Одеса Дніпро Донецьк Запоріжжя Львів Рівне Миколаїв Маріуполь "
    "Вінниця Херсон Полтава Чернігів",
    "GR": "Αθήνα Θεσσαλονίκη Πάτρα Ηράκλειο Λάρισα Βόλος Ιωάννινα Τρίκαλα Χαλκίδα Σέρρες "
    "Αλεξανδρούπολη Ξάνθη Κατερίνη Καλαμάτα",
}

# The long tail of surnames: stems x endings in each country's manner. Real registers
# hold thousands of surnames; the common ones above are drawn 35% of the time (which
# gives the commonest about 1-3% of a country, as Müller, Nagy or García have),
# the tail otherwise.
_TAILS: dict[str, tuple[str, str]] = {
    "DE": (
        "Schwarz Weiß Klein Groß Neu Alt Hoch Berg Wald Stein Bach Feld Rosen Linden Eichen "
        "Holz Brunn Kirch Hof Mühl Stern Sonnen Winter Sommer Eis Gold Silber Eisen Adler "
        "Falken Wolfs Hirsch Haber Kessel Ober Unter Lehn Dorn Roth Stolz",
        "mann er berg feld bach huber meier hofer bauer stein inger brecht hardt wald müller "
        "schmidt kamp haus",
    ),
    "FR": (
        "Ber Gar Mar Chev Laur Fav Brun Rich Gir Bouch Mor Dur Lef Roch Sauv Pell Tess Carr "
        "Bess Thib Gaill Rem Vid Pasc Arn Fleur Chauv Bouv Marc Guill",
        "and ard ier ot on eau in et elle ault aud ès ois",
    ),
    "IT": (
        "Ross Bian Ferr Mart Greg Lomb Ricc Colomb Gall Cost Fontan Mor Santor Marin Rinald "
        "Carus Vital Serr Brun Cattan Pell Bellin Donat Orland Bald Sart Guid Fabbr Mazz Barb",
        "i o ini etti elli ucci one ato ardi otti",
    ),
    "ES": (
        "Casa Villa Monte Val Río Torre Fuente Puente Campo Roca Sierra Vega Llano Prado "
        "Cuesta Arroyo Mesa Olmo Peña Cerro",
        "nueva verde alta seca mayor blanca real rubio dorada fría lobos mar",
    ),
    "PL": (
        "Kowal Wiśn Lewand Kamiń Zieliń Szymań Wojciech Kwiatk Grab Jabł Malin Jaw Olsz Dąbr "
        "Kozł Pawł Michal Wróbl Sobol Górn Borow Chmiel Czarn Biel Krup Rud Sad Zawad Ostrow "
        "Lip",
        "ski cki owski ewski czyk iak ek",
    ),
    "CZ": (
        "Nov Dvoř Svob Čern Proch Kuč Ves Hor Pokor Marš Kratoch Vávr Štěp Kop Sed Krej Zem "
        "Mach Růž Bláh",
        "ák ek ý ka íček ovský ecký áček",
    ),
    "RO": (
        "Pop Ion Dumitr Stoic Constantin Gheorgh Marin Rad Mih Stan Tud Nicol Vasil Lung Munt "
        "Dobr Croitor Olar Morar Dragom",
        "escu eanu ache ică an aru oiu ilă",
    ),
    "HU": (
        "Kis Nagy Szép Fekete Fehér Veres Sár Hegy Erdő Vár Tót Bír Bak Rác Szeg Sza Hal Mező",
        "i ó ai falvi házi völgyi helyi földi",
    ),
    "NL": (
        "Berg Broek Meer Heuvel Bosch Dijk Hoek Veen Wal Laan Poel Beek Akker Kamp Haar Brink "
        "Velde Hout Linde Molen",
        "van_den van_der de ter",
    ),
    "GR": (
        "Παπα Γεωργ Δημητρ Νικολ Κωστ Βασιλ Αντων Χριστ Ιωανν Σταυρ Παναγ Αθανασ Μιχαλ Πετρ "
        "Θεοδωρ Σπυρ Καραγ Αλεξ Μανωλ Λαμπρ",
        "όπουλος άκης ίδης ίου άτος έας",
    ),
    "RU": (
        "Белоус Богдан Вишняк Гаврил Давыд Ерём Жданов Зуев Калинин Лаврент Мартын Назар "
        "Осип Прохор Рыбак Савел Тимоф Устин Харит Шубин",
        "ов ин ский цев",
    ),
    "BG": (
        "Бан Вел Гоч Дел Енч Зах Кал Лаз Мит Нен Ох Пан Рус Сот Тан Фил Хад Цан Чол Шоп",
        "ов ев ски ин",
    ),
    "UA": (
        "Коваль Бондар Ткач Кравч Мельн Гончар Шевч Поліщ Савч Петр Климч Павл Лис Руд Марч "
        "Левч Харч Сидор Остап Яков",
        "енко ук ишин ський як",
    ),
}


def _tail(code: str) -> list[str]:
    stems, endings = (_words(t) for t in _TAILS[code])
    if code == "NL":
        return [f"{e.replace('_', ' ')} {s}" for s in stems for e in endings]
    return [s + e for s in stems for e in endings]


# Country weights of the generated population (roughly by population, Cyrillic and
# Greek names over-represented so that transliteration is tested hard).
COUNTRY_WEIGHTS = {
    "DE": 14, "FR": 11, "IT": 10, "ES": 8, "PL": 8, "RO": 6, "NL": 5, "CZ": 4,
    "HU": 4, "GR": 8, "BG": 8, "RU": 8, "UA": 6,
}  # fmt: skip


def _towns(country: str) -> list[str]:
    return _words(_TOWNS_CYRILLIC.get(country) or _LATIN[country][3])


def _female_surname(country: str, surname: str) -> str:
    """The female form of a surname where the language has one."""
    if country in ("RU", "BG"):
        if surname.endswith("ский"):
            return surname[:-4] + "ская"
        if surname.endswith(("ов", "ев", "ин", "ёв")):
            return surname + "а"
    if country == "UA" and surname.endswith("ський"):
        return surname[:-5] + "ська"
    if country == "PL" and surname.endswith(("ski", "cki", "dzki")):
        return surname[:-1] + "a"
    if country == "CZ":
        if surname.endswith("ý"):
            return surname[:-1] + "á"
        if surname[-1] in "aeiou":
            return surname[:-1] + "ová"
        return surname + "ová"
    if country == "GR":
        for male, female in (("ος", "ου"), ("ός", "ού"), ("ης", "η"), ("ής", "ή"), ("ας", "α")):
            if surname.endswith(male):
                return surname[: -len(male)] + female
    return surname


@dataclass(frozen=True)
class _Country:
    code: str
    surnames: list[str]
    tail: list[str]
    male: list[str]
    female: list[str]
    towns: list[str]


def _countries() -> dict[str, _Country]:
    out: dict[str, _Country] = {}
    for code, (surnames, male, female, _) in _LATIN.items():
        # "de Jong", "van den Berg": particles glue to the following word.
        words, names, pending = surnames.split(), [], ""
        for w in words:
            if w in ("de", "van", "den", "der", "De"):
                pending += w + " "
            else:
                names.append(pending + w)
                pending = ""
        out[code] = _Country(code, names, _tail(code), male.split(), female.split(), _towns(code))
    ru = [s + suffix for s in _RU_STEMS for suffix in ("ов", "ин", "ский")]
    out["RU"] = _Country("RU", ru, _tail("RU"), _SLAVIC_MALE_RU, _SLAVIC_FEMALE_RU, _towns("RU"))
    bg = [s + ("ов" if i % 3 else "ев") for i, s in enumerate(_BG_STEMS)]
    out["BG"] = _Country("BG", bg, _tail("BG"), _BG_MALE, _BG_FEMALE, _towns("BG"))
    out["UA"] = _Country(
        "UA",
        _UA_SURNAMES,
        _tail("UA"),
        _UA_MALE,
        _UA_FEMALE,
        _towns("UA"),
    )
    out["GR"] = _Country("GR", _GR_SURNAMES, _tail("GR"), _GR_MALE, _GR_FEMALE, _towns("GR"))
    return out


def _zipf(rng: random.Random, items: list[str]) -> str:
    """Rank r drawn with weight 1/(r+3): the commonest name of a list of 25 is about
    10% of the draws (first names are that concentrated in a birth cohort)."""
    weights = [1.0 / (r + 3) for r in range(len(items))]
    return rng.choices(items, weights=weights)[0]


def _surname(rng: random.Random, country: _Country) -> str:
    if rng.random() < 0.35:
        return _zipf(rng, country.surnames)
    return rng.choice(country.tail)


class PersonGenerator:
    """Deterministic synthetic people (see the module docstring)."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.countries = _countries()
        self.codes = list(COUNTRY_WEIGHTS)
        self.country_weights = [COUNTRY_WEIGHTS[c] for c in self.codes]

    def person(self) -> Person:
        rng = self.rng
        code = rng.choices(self.codes, weights=self.country_weights)[0]
        country = self.countries[code]
        gender = rng.choice("FM")
        surname = _surname(rng, country)
        if gender == "F":
            surname = _female_surname(code, surname)
        surnames = [surname]
        if code == "ES":
            surnames.append(_surname(rng, country))
        given = country.female if gender == "F" else country.male
        first = [_zipf(rng, given)]
        if rng.random() < 0.3:
            second = _zipf(rng, given)
            if second != first[0]:
                first.append(second)
        aliases: tuple[Name, ...] = ()
        if rng.random() < 0.1:
            other = self.countries[rng.choice(self.codes)]
            alias_first = other.female if gender == "F" else other.male
            aliases = (Name((_surname(rng, other),), (_zipf(rng, alias_first),)),)
        born = dt.date(1946, 1, 1) + dt.timedelta(days=rng.randrange(60 * 365))
        r = rng.random()
        birth = (
            BirthDate(born.year)
            if r < 0.05
            else BirthDate(born.year, born.month)
            if r < 0.1
            else BirthDate(born.year, born.month, born.day)
        )
        nationality = code if rng.random() < 0.9 else rng.choice(self.codes)
        return Person(
            name=Name(tuple(surnames), tuple(first)),
            aliases=aliases,
            born=birth,
            place_of_birth=rng.choice(country.towns) if rng.random() < 0.85 else None,
            country_of_birth=code,
            nationalities=(nationality,),
            gender=gender,
        )

    def people(self, n: int) -> list[Person]:
        return [self.person() for _ in range(n)]


# --- transliteration schemes --------------------------------------------------------------

_CYRILLIC_BASE = dict(
    zip(
        "абвгдезийклмнопрстуфхцчшщъыьэюяёіїєґ",
        _words(
            "a b v g d e z i y k l m n o p r s t u f kh ts ch sh shch _ y _ e yu ya yo i yi ye g"
        ),
        strict=True,
    )
)
_CYRILLIC_SCHEMES: dict[str, dict[str, str]] = {
    "english": {**_CYRILLIC_BASE, "ж": "zh"},
    "german": {**_CYRILLIC_BASE, "в": "w", "ж": "sch", "з": "s", "й": "j", "х": "ch",
               "ц": "z", "ч": "tsch", "ш": "sch", "щ": "schtsch", "ю": "ju", "я": "ja",
               "ё": "jo"},
    "french": {**_CYRILLIC_BASE, "ж": "j", "у": "ou", "ш": "ch", "ч": "tch", "щ": "chtch",
               "ю": "iou", "я": "ia", "й": "i", "ё": "io", "х": "kh"},
    "polish": {**_CYRILLIC_BASE, "в": "w", "ж": "ż", "х": "ch", "ц": "c", "ч": "cz",
               "ш": "sz", "щ": "szcz", "й": "j", "ю": "ju", "я": "ja", "ё": "io"},
    "scientific": {**_CYRILLIC_BASE, "ж": "ž", "х": "ch", "ц": "c", "ч": "č", "ш": "š",
                   "щ": "šč", "й": "j", "ю": "ju", "я": "ja", "ё": "ë", "ы": "y"},
}  # fmt: skip
_GREEK_BASE = dict(
    zip(
        "αβγδεζηθικλμνξοπρσςτυφχψω",
        _words("a v g d e z i th i k l m n x o p r s s t y f ch ps o"),
        strict=True,
    )
)
_GREEK_SCHEMES: dict[str, dict[str, str]] = {
    "elot": {**_GREEK_BASE, "ου": "ou", "αυ": "av", "ευ": "ev", "μπ": "mp", "ντ": "nt",
             "γγ": "ng", "γκ": "gk"},
    "phonetic": {**_GREEK_BASE, "υ": "i", "χ": "h", "ξ": "ks", "ου": "ou", "αυ": "af",
                 "ευ": "ef", "ει": "i", "οι": "i", "αι": "e", "μπ": "b", "ντ": "d",
                 "γγ": "ng", "γκ": "g", "β": "v", "δ": "d"},
}  # fmt: skip


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def transliterate(text: str, scheme: str) -> str:
    """Cyrillic or Greek ``text`` in Latin letters after ``scheme`` (see the tables)."""
    table = _CYRILLIC_SCHEMES.get(scheme) or _GREEK_SCHEMES[scheme]
    out, i, lower = (
        [],
        0,
        _strip_accents(text.lower()) if scheme in _GREEK_SCHEMES else text.lower(),
    )
    while i < len(lower):
        pair = lower[i : i + 2]
        if pair in table:
            out.append(table[pair])
            i += 2
            continue
        c = lower[i]
        out.append(table.get(c, c).replace("_", ""))
        i += 1
    latin = "".join(out)
    # Keep the capitals of the original words.
    return " ".join(w[:1].upper() + w[1:] for w in latin.split(" "))


def _script(text: str) -> str:
    for c in text:
        if "\u0400" <= c <= "\u04ff":
            return "cyrillic"
        if "\u0370" <= c <= "\u03ff" or "\u1f00" <= c <= "\u1fff":
            return "greek"
    return "latin"


_GERMAN_SPELLING = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}


def _latin_variant(text: str, rng: random.Random, scheme: str | None = None) -> str:
    script = _script(text)
    if script == "cyrillic":
        return transliterate(text, scheme or rng.choice(list(_CYRILLIC_SCHEMES)))
    if script == "greek":
        return transliterate(text, scheme or rng.choice(list(_GREEK_SCHEMES)))
    if rng.random() < 0.5:
        return "".join(_GERMAN_SPELLING.get(c, c) for c in text)
    return _strip_accents(text)


# --- corruption ----------------------------------------------------------------------------

CORRUPTIONS: dict[str, float] = {
    "transliteration": 4.0,
    "typo": 3.0,
    "swapped_order": 1.0,
    "missing_middle_name": 1.0,
    "day_month_swap": 1.0,
    "partial_date": 1.0,
    "year_off_by_one": 1.0,
    "missing_attributes": 1.0,
    "case_punctuation": 1.0,
}


@dataclass(frozen=True)
class Variant:
    """A query written from a stored person, and what was done to it."""

    person: Person
    corruptions: tuple[str, ...]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 3:
        return word
    script = _script(word)
    alphabet = {
        "cyrillic": "абвгдежзиклмнопрстуфхцчшщ",
        "greek": "αβγδεζηθικλμνξοπρστυφχψω",
    }.get(script, "abcdefghijklmnopqrstuvwxyz")
    i = rng.randrange(1, len(word))  # the first letter is the one least often wrong
    kind = rng.choice(("substitute", "insert", "delete", "transpose"))
    if kind == "substitute":
        return word[:i] + rng.choice(alphabet) + word[i + 1 :]
    if kind == "insert":
        return word[:i] + rng.choice(alphabet) + word[i:]
    if kind == "delete":
        return word[:i] + word[i + 1 :]
    if i == len(word) - 1:
        i -= 1
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _applicable(person: Person) -> list[str]:
    born = person.born
    out = ["transliteration", "typo", "swapped_order", "case_punctuation", "missing_attributes"]
    if len(person.name.first_names) > 1:
        out.append("missing_middle_name")
    if (
        born.day is not None
        and born.month is not None
        and born.day <= 12
        and born.day != born.month
    ):
        out.append("day_month_swap")
    if born.month is not None:
        out.append("partial_date")
    if born.year is not None and born.year < dt.date.today().year:
        out.append("year_off_by_one")
    return out


def corrupt(person: Person, rng: random.Random, *, at_most: int = 2) -> Variant:
    """One labelled query variant of ``person`` (one to ``at_most`` corruptions)."""
    options = _applicable(person)
    weights = [CORRUPTIONS[o] for o in options]
    chosen: list[str] = []
    for _ in range(rng.randint(1, at_most)):
        pick = rng.choices(options, weights=weights)[0]
        if pick not in chosen:
            chosen.append(pick)
    surnames, first = list(person.name.surnames), list(person.name.first_names)
    born, p = person.born, person
    if "partial_date" in chosen and "day_month_swap" in chosen:
        chosen.remove("partial_date")  # a swap needs the day
    for c in chosen:
        if c == "transliteration":
            scheme = None
            surnames = [_latin_variant(s, rng, scheme) for s in surnames]
            first = [_latin_variant(f, rng, scheme) for f in first]
            if p.place_of_birth:
                p = replace(p, place_of_birth=_latin_variant(p.place_of_birth, rng))
        elif c == "typo":
            words = surnames + first
            i = rng.randrange(len(words))
            words[i] = _typo(words[i], rng)
            surnames, first = words[: len(surnames)], words[len(surnames) :]
        elif c == "swapped_order":
            surnames, first = first or surnames, surnames if first else []
        elif c == "missing_middle_name":
            first = first[:1]
        elif c == "day_month_swap" and born.day is not None:
            born = BirthDate(born.year, born.day, born.month)
        elif c == "partial_date":
            born = BirthDate(born.year, born.month if rng.random() < 0.5 else None)
        elif c == "year_off_by_one":
            assert born.year is not None
            year = born.year + rng.choice((-1, 1))
            if year > dt.date.today().year:
                year -= 2
            leap_day = born.month == 2 and born.day == 29
            born = replace(born, year=year, day=28 if leap_day else born.day)
        elif c == "missing_attributes":
            p = replace(p, place_of_birth=None, country_of_birth=None, nationalities=())
        elif c == "case_punctuation":
            surnames = ["-".join(s.upper().split()) for s in surnames]
            first = [f.upper() for f in first]
    query = replace(p, name=Name(tuple(surnames), tuple(first)), aliases=(), born=born)
    return Variant(query, tuple(chosen))
